"""A warm ansible-playbook for a run's jobs: the playbook fork server.

Every step is one ansible-playbook run under ansible-runner. Python start-up plus importing
ansible costs ~1 s of CPU per step (measured: a no-op playbook takes 1.5 s, of which 1.07 s is
`import ansible.cli.playbook`), which at 1 GB is as much as the copy itself. The executor
therefore starts this server once per run: it imports ansible-core once, with the run's
environment and working directory, and forks a child per job that runs ansible-core's own
`ansible-playbook` entry point (`ansible.cli.playbook.main`), so the playbook still runs
unchanged, under ansible-runner, with runner's callback and events.

The link is the `binary` ansible-runner starts (runner.WRAPPER, playbook_client.py): it hands the
server its argv, environment, working directory and terminal (stdin/stdout/stderr, passed as
file descriptors over a unix socket), waits for the exit status and exits with it. If the
wrapper dies (runner cancels a job by killing its process group), the server kills the child's
process tree. The fast path is only taken when nothing that Ansible reads at import time differs
from the server's (ansible_internals.import_fingerprint); otherwise the child execs the real
ansible-playbook, so a mismatch costs speed, never correctness, and the run reports it. What the
server relies on of ansible's insides is in ansible_internals.py.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import ansible_internals as internals
from .playbook_client import recv, send

SERVER_FLAG = "--fjmig-playbook-server"
"""In the server's argv, so that orphan reaping recognises its children (runner._is_ansible_group)."""
_PR_SET_PDEATHSIG = 1


# ----------------------------------------------------------------------------------------------
# The server


@dataclass
class _Job:
    pid: int
    conn: socket.socket
    pidfd: int


def serve(socket_path: str, fingerprint: Callable[[dict[str, str], str], dict[str, str]] | None = None,
          programs: dict[str, Callable[[list[str]], int]] | None = None) -> None:
    """Import ansible, then fork a child per request until told to stop (SIGTERM) or orphaned.
    `fingerprint` decides which jobs may fork (default: ansible_internals.import_fingerprint; an
    execution node's jobs each run in their own project copy: config_fingerprint). `programs`:
    other programs a request may name (argv[0]), run in the forked child by the callable
    (an execution node's `ansible-runner worker`, node_agent.py)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)  # dies with the fjmig process that started it
    if os.getppid() == 1:
        return
    # SIGTERM only wakes the loop up (a self-pipe): an exception raised at an arbitrary point,
    # e.g. between freezing a playbook's processes and killing them, would strand them.
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.signal(signal.SIGTERM, lambda *_: os.write(wake_write, b"x"))
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    import ansible.cli.playbook  # noqa: F401  (the point of the server)

    internals.preload_modules()
    internals.cache_collection_metadata()
    internals.preload_plugins()
    fingerprint_of = fingerprint or internals.import_fingerprint
    own = fingerprint_of(dict(os.environ), os.getcwd())
    local_tmp_root = internals.local_tmp_root()
    counts = {"forked": 0, "fallback": 0}

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    os.chmod(socket_path, 0o600)
    listener.listen(64)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    selector.register(wake_read, selectors.EVENT_READ, "stop")
    jobs: dict[int, _Job] = {}
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        while True:
            for key, _ in selector.select():
                tag = key.data
                if tag == "stop":
                    return
                if tag == "accept":
                    conn, _ = listener.accept()
                    try:
                        conn.settimeout(10)  # a wrapper sends its request at once; never hang on one
                        request, fds = recv(conn, with_fds=True)
                        conn.settimeout(None)
                    except (OSError, EOFError, ValueError):
                        conn.close()
                        continue
                    if request.get("stats") or len(fds) != 3:
                        for fd in fds:
                            os.close(fd)
                        with contextlib.suppress(OSError):
                            send(conn, dict(counts))
                        conn.close()
                        continue
                    program = (programs or {}).get(str(request["argv"][0]))
                    fast = program is not None or fingerprint_of(request["env"], request["cwd"]) == own
                    counts["forked" if fast else "fallback"] += 1
                    pid = os.fork()
                    if pid == 0:  # the child never returns
                        signal.signal(signal.SIGTERM, signal.SIG_DFL)
                        selector.close()
                        listener.close()
                        os.close(wake_read)
                        os.close(wake_write)
                        for job in jobs.values():
                            job.conn.close()
                            os.close(job.pidfd)
                        _run_child(conn, request, fds, fast, local_tmp_root, program)
                    for fd in fds:
                        os.close(fd)
                    pidfd = os.pidfd_open(pid)
                    jobs[pid] = _Job(pid, conn, pidfd)
                    selector.register(conn, selectors.EVENT_READ, ("conn", pid))
                    selector.register(pidfd, selectors.EVENT_READ, ("exit", pid))
                elif tag[0] == "conn":
                    job = jobs.get(tag[1])
                    if job is None:  # finished earlier in this same batch of events
                        continue
                    try:
                        recv(job.conn)  # a signal the wrapper was sent (e.g. SIGHUP: fjmig died)
                    except (OSError, EOFError, ValueError):
                        selector.unregister(job.conn)  # the wrapper is gone: runner cancelled the job
                    # Either way the playbook goes, all of it: ansible's workers call setsid(), so a
                    # signal to the playbook's process group would leave them running.
                    kill_tree(job.pid)
                else:
                    job = jobs.pop(tag[1], None)
                    if job is None:
                        continue
                    _, status = os.waitpid(job.pid, 0)
                    code = os.waitstatus_to_exitcode(status)
                    with contextlib.suppress(OSError):
                        send(job.conn, {"exit": code if code >= 0 else 128 - code})
                    with contextlib.suppress(KeyError, ValueError):
                        selector.unregister(job.conn)
                    selector.unregister(job.pidfd)
                    os.close(job.pidfd)
                    job.conn.close()
    finally:
        for job in jobs.values():
            kill_tree(job.pid)
        with contextlib.suppress(OSError):
            os.unlink(socket_path)


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as handle:
                    stat = handle.read()
                ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
            except (OSError, ValueError, IndexError):  # gone, or going, while we looked
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    return children


def process_tree(root: int) -> list[int]:
    """ROOT and every process below it, whatever process group it moved to (setsid, setpgid)."""
    children = _children_map()
    tree, queue = [], [root]
    while queue:
        pid = queue.pop()
        tree.append(pid)
        queue.extend(children.get(pid, []))
    return tree


def kill_tree(root: int) -> None:
    """Kill a playbook and everything it started. Process groups are not enough: ansible's workers
    call setsid(), so a killed ansible-playbook leaves its workers and their commands running.
    The tree is frozen first (SIGSTOP) so that nothing forks or escapes to init between the walk
    and the kill, and killed leaves first, so that no process outlives its parent to be
    re-parented out of reach (and left stopped)."""
    stopped: list[int] = []
    for _ in range(5):
        fresh = [pid for pid in process_tree(root) if pid not in stopped]
        if not fresh:
            break
        for pid in fresh:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGSTOP)
            stopped.append(pid)
    for pid in reversed(stopped):  # process_tree lists parents before their children
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def _run_child(conn: socket.socket, request: dict[str, Any], fds: list[int], fast: bool,
               local_tmp_root: str, program: Callable[[list[str]], int] | None = None) -> None:
    code = 1
    try:
        os.setpgid(0, 0)
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in zip((0, 1, 2), fds, strict=True):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        conn.close()
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        argv = [str(a) for a in request["argv"]]
        job_dir = os.environ.get("FJMIG_JOB_DIR")
        if job_dir:  # so that a later run can reap this playbook if fjmig dies (runner.reap_orphans)
            with open(os.path.join(job_dir, "pgid.play"), "w", encoding="ascii") as handle:
                handle.write(str(os.getpid()))
        if program is not None:
            code = program(argv)
            return
        if not fast:
            os.execvp("ansible-playbook", ["ansible-playbook", *argv[1:]])  # noqa: S606 (argv, no shell)
        # The job's own local temporary directory, where its ANSIBLE_LOCAL_TEMP says (runner.py: in
        # the job dir, which goes even when the job is killed).
        internals.job_local_tmp(os.path.expanduser(os.environ.get("ANSIBLE_LOCAL_TEMP", "")), local_tmp_root)
        internals.reset_display_width()
        sys.argv = ["ansible-playbook", *argv[1:]]
        try:
            code = internals.run_playbook_cli(sys.argv)
        finally:
            internals.remove_local_tmp()
    except BaseException as exc:  # the child must always exit, never return
        with contextlib.suppress(Exception):
            sys.stderr.write(f"fjmig playbook server: {exc!r}\n")
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


# ----------------------------------------------------------------------------------------------
# The executor's side


class PlaybookServer:
    """Start the server for a run (a context manager); `path` goes in the jobs' environment."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd = cwd
        self.env = env
        self.dir: Path | None = None
        self.path = ""
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PlaybookServer:
        self.dir = Path(tempfile.mkdtemp(prefix="fjps-", dir="/tmp"))  # short: a socket path is <108 bytes
        self.path = str(self.dir / "s")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.execution.playbook_server", SERVER_FLAG, self.path],
            cwd=self.cwd, env={**self.env, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C on the terminal reaches fjmig, which cancels jobs
        )
        return self

    def wait_ready(self, timeout: float = 30.0) -> str | None:
        """The socket path once the server accepts jobs; None if it failed to start (then every job
        execs ansible-playbook, as it would without a server)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(self.path):
                return self.path
            if self.process is None or self.process.poll() is not None:
                return None
            time.sleep(0.02)
        return None

    def stats(self) -> dict[str, int]:
        """How many jobs took the fast path ("forked") and how many exec'd ansible-playbook."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(self.path)
            send(conn, {"stats": True})
            reply, _ = recv(conn)
            return {k: int(v) for k, v in reply.items()}

    def __exit__(self, *_exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)


def _exit_now() -> None:
    """Exit without the interpreter's teardown of ansible's module graph (it takes ~0.4 s, which
    every run would wait for at its end), doing first what ansible registered with atexit."""
    internals.remove_local_tmp()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == SERVER_FLAG:
        serve(sys.argv[2])
        _exit_now()
    else:
        sys.stderr.write(f"usage: python -m orchestrator.execution.playbook_server {SERVER_FLAG} SOCKET\n")
        sys.exit(2)
