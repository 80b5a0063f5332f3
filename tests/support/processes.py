"""Finding processes, on this machine and on lab hosts (they share its pid namespace), by what a
test started them with: an environment entry unique to the test (its job dir, its journal's job
token), never by a command line alone, which another test's processes could share."""

from __future__ import annotations

from pathlib import Path


def processes(environ_has: bytes | None = None, *, command: bytes | None = None,
              cmdline: list[bytes] | None = None, title: bytes | None = None) -> list[int]:
    """Pids of the live (not zombie) processes on this machine, lab hosts included (they share
    its pid namespace), with an environment entry starting with `environ_has`, the command name
    `command`, a command line starting with the arguments `cmdline`, and one whose raw text starts
    with `title` (a process that retitles itself, like an ssh master), whichever are given.
    Processes that exit while /proc is read are skipped."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (proc / "stat").read_bytes().rsplit(b")", 1)[1].split()[0] == b"Z":
                continue
            if command is not None and (proc / "comm").read_bytes().strip() != command:
                continue
            if cmdline is not None and (proc / "cmdline").read_bytes().split(b"\0")[:len(cmdline)] != cmdline:
                continue
            if title is not None and not (proc / "cmdline").read_bytes().startswith(title):
                continue
            if environ_has is not None and not any(
                    entry.startswith(environ_has) for entry in (proc / "environ").read_bytes().split(b"\0")):
                continue
        except (OSError, IndexError):
            continue
        found.append(int(proc.name))
    return found
