"""Shared fixtures: the shipped plans and a scratch plans directory."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PLANS = ROOT / "migration_plans"

# ansible-runner and ansible-playbook live next to the interpreter in the venv.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


@pytest.fixture
def plans_copy(tmp_path: Path) -> Path:
    """A writable copy of the shipped plans."""
    target = tmp_path / "plans"
    shutil.copytree(PLANS, target)
    return target


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
