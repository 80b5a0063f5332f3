"""What runs on an execution node besides `ansible-runner worker`: the node's playbook server and
the stop of a job's processes (docs/EXECUTION.md, 'Execution nodes').

The control node ships this module, the playbook server and its client (node_code.bundle) over the
SSH session that starts them, into `~/.fjmig/node/code-<sha256>/` on the node, so that the code a
node runs is always the control node's own; nothing of fjmig is installed there. Standard library
only at import: the server imports ansible from the node's own environment (its venv's python).

- `serve RUN_TAG`: the node's warm playbook server for one run, started with the environment
  ansible-runner gives the node's jobs (so a job forks instead of starting ansible-playbook). It is
  tethered to its SSH session: when the control node closes it, dies, or drops off the network
  (its stdin ends), the server stops and kills the playbooks it runs.
- `stop TOKENS_JSON`: kill every process on the node whose environment holds one of the job
  tokens (the job's `ansible-runner worker` and all it started, which inherit it), then wait
  until they are gone, so that a rerun never runs beside its predecessor.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

WRAPPER = """#!{python} -IS
# fjmig on an execution node: ansible-runner's `binary` for the node's jobs (playbook_client.py).
import sys
sys.path.insert(0, {root!r})
from orchestrator.execution.playbook_client import client_main
sys.exit(client_main(sys.argv[1:]))
"""


WORKER = """#!{python} -IS
# fjmig on an execution node: `ansible-runner worker` for a job, run by the node's warm server
# (a fork of a process that has imported ansible-runner), or exec'd without one.
import sys
sys.path.insert(0, {root!r})
from orchestrator.execution.playbook_client import client_main
sys.exit(client_main(sys.argv[1:], program="ansible-runner-worker", fallback=[{runner!r}, "worker"]))
"""
WORKER_PROGRAM = "ansible-runner-worker"


def code_dir() -> str:
    """Where the shipped code lives on this node (this module's package root)."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def node_dir() -> str:
    return os.path.dirname(code_dir())


def write_wrapper(name: str = "ansible-playbook-wrapper", template: str = WRAPPER) -> str:
    path = os.path.join(code_dir(), name)
    runner = os.path.join(os.path.dirname(sys.executable), "ansible-runner")
    text = template.format(python=sys.executable, root=code_dir(), runner=runner)
    if not os.path.exists(path):
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o700)
        os.replace(tmp, path)
    return path


def _tagged(entries: set[bytes]) -> list[int]:
    found = []
    spared = {os.getpid(), os.getppid()}
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in spared:
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as handle:
                if entries.intersection(handle.read().split(b"\0")):
                    with open(f"/proc/{name}/stat", "rb") as stat:
                        if stat.read().rsplit(b")", 1)[1].split()[0] != b"Z":
                            found.append(int(name))
        except (OSError, IndexError):
            continue
    return found


def _marker(token: str, pid: int) -> str:
    return os.path.join(node_dir(), "workers", f"{hashlib.sha256(token.encode()).hexdigest()[:16]}.{pid}")


def _starttime(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] in (b"Z", b"X") else fields[19].decode()


def _forked_workers(tokens: list[str]) -> list[int]:
    """The workers the server forked for TOKENS (a fork keeps the server's environment, so the token
    does not find them: run_worker records each, with its start time against a recycled pid)."""
    found = []
    directory = os.path.join(node_dir(), "workers")
    for token in tokens:
        prefix = os.path.basename(_marker(token, 0)).rsplit(".", 1)[0] + "."
        for name in os.listdir(directory) if os.path.isdir(directory) else []:
            if name.startswith(prefix):
                with contextlib.suppress(OSError, ValueError):
                    with open(os.path.join(directory, name), encoding="ascii") as handle:
                        started = handle.read().strip()
                    pid = int(name.rsplit(".", 1)[1])
                    if _starttime(pid) == started:
                        found.append(pid)
    return found


def stop(tokens: list[str], server_tags: list[str], timeout: float = 20.0) -> dict[str, int]:
    """Kill the processes tagged with TOKENS (FJMIG_JOB_TOKEN, and the workers the server forked for
    them) or SERVER_TAGS (FJMIG_NODE_SERVER), frozen first so that none forks away; return how many,
    once none is left."""
    entries = {b"FJMIG_JOB_TOKEN=" + t.encode() for t in tokens if t}
    entries |= {b"FJMIG_NODE_SERVER=" + t.encode() for t in server_tags if t}
    killed: set[int] = set()
    deadline = time.monotonic() + timeout
    while True:
        victims = _tagged(entries) + _forked_workers([t for t in tokens if t])
        if not victims:
            return {"killed": len(killed), "left": 0}
        if time.monotonic() > deadline:
            return {"killed": len(killed), "left": len(victims)}
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            for pid in victims:
                with contextlib.suppress(OSError):
                    os.kill(pid, sig)
        killed.update(victims)
        time.sleep(0.02)


def serve(run_tag: str, envvars: dict[str, str]) -> None:
    """The node's playbook server for the run RUN_TAG (see the module's docstring)."""
    from . import ansible_internals as internals
    from .playbook_server import serve as serve_playbooks

    root = os.path.join(node_dir(), "runs", run_tag)
    os.makedirs(root, mode=0o700, exist_ok=True)
    socket_path = os.path.join(root, "s")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(socket_path)
    project = os.path.join(code_dir(), "project")
    wrapper = write_wrapper()
    worker = write_wrapper("ansible-runner-worker", WORKER)
    env = internals.runner_environment(project, envvars, wrapper)  # type: ignore[arg-type]
    os.environ.clear()
    os.environ.update(env)
    os.environ["FJMIG_NODE_SERVER"] = run_tag
    os.chdir(project)

    _tether(socket_path, {"socket": socket_path, "wrapper": wrapper, "worker": worker, "code": code_dir()})
    import ansible_runner.__main__  # noqa: F401  (what each job's worker runs, imported once)

    try:
        serve_playbooks(socket_path, internals.config_fingerprint, {WORKER_PROGRAM: run_worker})
    finally:
        close_masters(envvars.get("ANSIBLE_SSH_CONTROL_PATH_DIR", ""))
        with contextlib.suppress(OSError):
            os.rmdir(root)


def _tether(socket_path: str, ready: dict[str, str]) -> None:
    """Fork the server's tether: a child that says when the server listens (a JSON line on the SSH
    channel's stdout), then reads the channel's stdin until it ends and stops the server (SIGTERM).
    A process, not a thread: the server forks its playbooks, and a thread blocked on a lock (a
    buffered stdin's) would leave that lock taken in every child."""
    server = os.getpid()
    if os.fork() == 0:
        try:
            import ctypes

            ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: never outlive the server
            while not os.path.exists(socket_path):
                if os.getppid() != server:
                    os._exit(0)
                time.sleep(0.01)
            os.write(1, (json.dumps(ready) + "\n").encode())
            while os.read(0, 4096):
                pass
            os.kill(server, signal.SIGTERM)  # the control node is gone: stop, killing the playbooks
        finally:
            os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)


def run_worker(argv: list[str]) -> int:
    """`ansible-runner worker ARGV[1:]` in this (forked) process: ansible-runner's own entry point,
    reading the job's stream on stdin and writing events and artifacts on stdout, as the command
    does. Its --delete removes the job's directory at exit, which os._exit skips: done here."""
    from ansible_runner.__main__ import main as runner_main

    args = ["worker", *argv[1:]]
    token = os.environ.get("FJMIG_JOB_TOKEN", "")
    marker = _marker(token, os.getpid()) if token else ""
    if marker:  # so that stop() finds this worker by its job's token
        os.makedirs(os.path.dirname(marker), mode=0o700, exist_ok=True)
        with open(marker, "w", encoding="ascii") as handle:
            handle.write(str(_starttime(os.getpid())))
    try:
        runner_main(args)
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    finally:
        sys.stdout.flush()
        if marker:
            with contextlib.suppress(OSError):
                os.unlink(marker)
        if "--delete" in args and "--private-data-dir" in args:
            import shutil

            shutil.rmtree(args[args.index("--private-data-dir") + 1], ignore_errors=True)
    return code


def close_masters(control_dir: str) -> None:
    """The SSH masters the run's playbooks kept on this node (ControlPersist) exit with the run."""
    if not control_dir or not os.path.isdir(control_dir):
        return
    for name in os.listdir(control_dir):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(["ssh", "-o", f"ControlPath={os.path.join(control_dir, name)}", "-O", "exit", "fjmig"],
                           capture_output=True, timeout=10, check=False)
    with contextlib.suppress(OSError):
        for name in os.listdir(control_dir):
            os.unlink(os.path.join(control_dir, name))
        os.rmdir(control_dir)


def main(argv: list[str]) -> int:
    if argv[:1] == ["serve"] and len(argv) == 3:
        serve(argv[1], json.loads(argv[2]))
        from . import ansible_internals as internals

        internals.remove_local_tmp()
        sys.stdout.flush()
        os._exit(0)
    if argv[:1] == ["stop"] and len(argv) == 3:
        print(json.dumps(stop(json.loads(argv[1]), json.loads(argv[2]))))
        return 0
    if argv[:1] == ["check"]:
        print(json.dumps({"python": sys.version.split()[0], "code": code_dir()}))
        return 0
    sys.stderr.write("usage: node_agent serve RUN_TAG ENVVARS_JSON | stop TOKENS_JSON SERVER_TAGS_JSON | check\n")
    return 2
