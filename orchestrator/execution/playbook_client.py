"""The wrapper's side of the playbook server (playbook_server.py): its wire protocol and `client_main`.

ansible-runner starts the wrapper (runner.WRAPPER) once per job, with `python -I -S`, so every
import here is paid by every step: this module imports only what the wire needs (measured: 30 ms,
against 87 ms for importing playbook_server.py with its server's imports, out of a no-op step's ~0.6 s).
A message is a 4-byte big-endian length and a JSON object; the wrapper's first message carries
its terminal's file descriptors (SCM_RIGHTS).
"""

from __future__ import annotations

import array
import contextlib
import json
import os
import signal
import socket
import sys

MAX_MESSAGE = 4 << 20


def send(conn: socket.socket, payload: dict[str, object], fds: list[int] | None = None) -> None:
    data = json.dumps(payload).encode()
    message = len(data).to_bytes(4, "big") + data
    if fds:
        conn.sendmsg([message], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    else:
        conn.sendall(message)


def _recv_exact(conn: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = conn.recv(size)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def recv(conn: socket.socket, with_fds: bool = False) -> tuple[dict[str, object], list[int]]:
    fds: list[int] = []
    if with_fds:
        fd_size = array.array("i").itemsize * 3
        head, ancdata, _, _ = conn.recvmsg(4, socket.CMSG_SPACE(fd_size))
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                received = array.array("i")
                received.frombytes(data[: len(data) - (len(data) % received.itemsize)])
                fds.extend(received)
        if not head:
            raise EOFError
        head += _recv_exact(conn, 4 - len(head))
    else:
        head = _recv_exact(conn, 4)
    size = int.from_bytes(head, "big")
    if size > MAX_MESSAGE:
        raise ValueError("message too large")
    return json.loads(_recv_exact(conn, size)), fds


def client_main(argv: list[str], program: str = "ansible-playbook", fallback: list[str] | None = None) -> int:
    """Run ansible-playbook ARGV through the server named by $FJMIG_PLAYBOOK_SERVER, or exec it.
    `program`: what the server runs (an execution node's server also runs `ansible-runner worker`
    for its jobs, node_agent.py); `fallback`: the argv prefix exec'd without a server."""
    job_dir = os.environ.get("FJMIG_JOB_DIR")
    if job_dir:
        with open(os.path.join(job_dir, "pgid"), "w", encoding="ascii") as handle:
            handle.write(str(os.getpgid(0)))
    path = os.environ.get("FJMIG_PLAYBOOK_SERVER")
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        if not path:
            raise OSError("no server")
        conn.connect(path)
        send(conn, {"argv": [program, *argv], "env": dict(os.environ), "cwd": os.getcwd()}, [0, 1, 2])
    except OSError:
        conn.close()
        command = [*(fallback or [program]), *argv]
        os.execvp(command[0], command)  # noqa: S606 (argv, no shell)

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(OSError):
            send(conn, {"signal": int(signum)})

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, forward)
    while True:
        try:
            reply, _ = recv(conn)
        except InterruptedError:
            continue
        except (OSError, EOFError, ValueError):
            sys.stderr.write("fjmig: the playbook server went away\n")
            return 1
        if "exit" in reply:
            return int(str(reply["exit"]))
