#!/usr/bin/python3 -IS
"""fjmig-svc: the lab's service control program (docs/EXECUTION.md, `fjmig_service_ctl`).

    fjmig-svc start  SYSTEM_KEY --dir DATA_PATH --port PORT   serve DATA_PATH over HTTP on 0.0.0.0:PORT
    fjmig-svc stop   SYSTEM_KEY                                stop it
    fjmig-svc status SYSTEM_KEY                                exit 0 running, 3 stopped

`start` and `stop` print `changed` or `ok` (playbooks use it for `changed_when`). A pid file in
/root/.fjmig/services/ (per lab host, since each host has its own /root) records the pid and the
process start time, so a recycled pid is never mistaken for the service and never killed.
Standard library only: it runs on every lab host with the system python3, isolated and without
the site module (`-IS`: no PYTHON* variables, no site-packages; a site-packages with .pth files
costs ~40 ms a start). A cutover's freeze window runs it twice (stop, start), so a start or stop
imports only what it needs: the commands the playbooks send are parsed by hand (importing argparse
and re costs ~25 ms), anything else goes through argparse for its help and messages; pathlib,
typing and socket are not imported on that path (the server imports socket).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import signal
import sys
import time

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~5 ms of every run)
if TYPE_CHECKING:
    import socket
    from typing import Any

RUN_DIR = os.environ.get("FJMIG_SVC_DIR", "/root/.fjmig/services")
KEY_FIRST = frozenset("abcdefghijklmnopqrstuvwxyz")
KEY_CHARACTERS = KEY_FIRST | frozenset("0123456789-")
STOPPED = 3
STOP_TIMEOUT = 5.0


class ServiceError(Exception):
    """A start that cannot work (port taken, no such directory): exit 1 with the reason."""


def valid_key(key: str) -> bool:
    """A SYSTEM_KEY: <dept>__<system>, each [a-z][a-z0-9-]{0,40} (no regular expression: importing
    re costs ~10 ms of every run)."""
    parts = key.split("__")
    return len(parts) == 2 and all(
        0 < len(part) <= 41 and part[0] in KEY_FIRST and set(part) <= KEY_CHARACTERS
        for part in parts)


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def _starttime(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks); None if gone or a zombie."""
    try:
        stat = _read(f"/proc/{pid}/stat")
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in {"Z", "X"}:
        return None
    return fields[19]


def _pid_file(key: str) -> str:
    return os.path.join(RUN_DIR, f"{key}.pid")


def running(key: str) -> dict[str, Any] | None:
    """The pid file's record if its process is alive and is the one that wrote it."""
    try:
        record = json.loads(_read(_pid_file(key)))
        pid, started = int(record["pid"]), str(record["starttime"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record if _starttime(pid) == started else None


@contextlib.contextmanager
def _locked(key: str) -> Any:
    """One start or stop at a time on this host (a lock on the pid directory itself: no lock files)."""
    os.makedirs(RUN_DIR, mode=0o700, exist_ok=True)
    fd = os.open(RUN_DIR, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)


def _serve(listener: socket.socket, key: str, directory: str, port: int, ready: int) -> None:
    """In the daemon: record ourselves, tell the starter we are up, serve until killed."""
    os.chdir("/")
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    for name in os.listdir("/proc/self/fd"):  # never hold the starter's pipes (an SSH session would hang)
        fd = int(name)
        if fd > 2 and fd not in {listener.fileno(), ready}:
            with contextlib.suppress(OSError):
                os.close(fd)
    pid = os.getpid()
    record = {"pid": pid, "starttime": _starttime(pid), "key": key, "dir": directory, "port": port}
    tmp = os.path.join(RUN_DIR, f"{key}.tmp{pid}")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(record))
    os.replace(tmp, _pid_file(key))
    os.write(ready, b"ok")
    os.close(ready)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _serve_forever(listener, directory)


def _daemonize(listener: socket.socket, key: str, directory: str, port: int, lock: int) -> None:
    """Double fork so the service outlives the SSH session; return once it has written its pid file."""
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(read_end)
        os.close(lock)  # an inherited flock would block every later start and stop
        os.setsid()
        if os.fork() != 0:
            os._exit(0)
        try:
            _serve(listener, key, directory, port, write_end)
        finally:
            os._exit(1)
    os.close(write_end)
    listener.close()
    os.waitpid(child, 0)
    with os.fdopen(read_end, "rb") as pipe:
        if pipe.read() != b"ok":
            raise ServiceError(f"{key}: the service did not start")


def _reply(conn: socket.socket, status: str, body: bytes = b"", content_type: str = "text/plain") -> None:
    head = f"HTTP/1.0 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n" \
           "Connection: close\r\n\r\n"
    conn.sendall(head.encode() + body)


def _handle(conn: socket.socket, directory: str) -> None:
    """One GET or HEAD: a file under `directory`, or a plain listing of a directory."""
    from urllib.parse import unquote

    with conn:
        conn.settimeout(30)
        data = b""
        while b"\r\n\r\n" not in data and b"\n\n" not in data and len(data) < 65536:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
        parts = data.split(b"\n", 1)[0].decode("latin-1").split()
        if len(parts) < 2 or parts[0] not in {"GET", "HEAD"}:
            _reply(conn, "400 Bad Request", b"GET or HEAD only\n")
            return
        root = os.path.realpath(directory)
        path = os.path.realpath(os.path.join(root, unquote(parts[1].split("?", 1)[0]).lstrip("/")))
        if path != root and not path.startswith(root + os.sep):
            _reply(conn, "404 Not Found", b"not found\n")
        elif os.path.isdir(path):
            names = sorted(n + "/" if os.path.isdir(os.path.join(path, n)) else n for n in os.listdir(path))
            _reply(conn, "200 OK", b"" if parts[0] == "HEAD" else "".join(n + "\n" for n in names).encode())
        elif os.path.isfile(path):
            with open(path, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                conn.sendall(f"HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n"
                             f"Content-Length: {size}\r\nConnection: close\r\n\r\n".encode())
                if parts[0] == "GET" and size:
                    conn.sendfile(handle)
        else:
            _reply(conn, "404 Not Found", b"not found\n")


def _serve_forever(listener: socket.socket, directory: str) -> None:
    import threading

    while True:
        conn, _ = listener.accept()
        threading.Thread(target=_safe_handle, args=(conn, directory), daemon=True).start()


def _safe_handle(conn: socket.socket, directory: str) -> None:
    with contextlib.suppress(OSError):
        _handle(conn, directory)


def start(key: str, directory: str, port: int) -> bool:
    """Serve `directory` on `port`; False (no-op) when already running.

    A small HTTP/1.0 file server of our own: `http.server` takes longer to import than the lab
    takes to start a host."""
    import socket

    if not os.path.isdir(directory):
        raise ServiceError(f"{key}: no such directory {directory}")
    with _locked(key) as lock:
        if running(key):
            return False
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind(("0.0.0.0", port))  # noqa: S104 - the lab host's own namespace
            listener.listen(64)
        except OSError as exc:
            listener.close()
            raise ServiceError(f"{key}: cannot listen on port {port}: {exc.strerror}") from None
        _daemonize(listener, key, directory, port, lock)
        return True


def stop(key: str) -> bool:
    """Stop the service; False (no-op) when it was not running."""
    with _locked(key):
        record = running(key)
        if record is None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(_pid_file(key))
            return False
        pid, started = int(record["pid"]), str(record["starttime"])
        _terminate(pid, started)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(_pid_file(key))
        return True


def _terminate(pid: int, started: str) -> None:
    """SIGTERM, wait up to STOP_TIMEOUT for the process to end, then SIGKILL. The wait is on a pidfd
    (woken the moment it exits; the service is not our child), else polling every 20 ms."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # gone already, or a kernel without pidfds
        pidfd = None
    try:
        if _starttime(pid) != started:  # the pid was reused between reading the record and opening it
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while _starttime(pid) == started and time.monotonic() < deadline:
            if pidfd is not None:
                select.select([pidfd], [], [], max(0.0, deadline - time.monotonic()))
            else:
                time.sleep(0.02)
        if _starttime(pid) == started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _is_port(text: str) -> bool:
    return text.isdigit() and 0 < int(text) < 65536


def _port(text: str) -> int:
    import argparse

    if not _is_port(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (1-65535)")
    return int(text)


def _plain_command(argv: list[str]) -> tuple[str, str, str | None, int | None] | None:
    """(action, key, dir, port) for the exact forms the playbooks send: `stop KEY`, `status KEY`,
    `start KEY --dir DIR --port PORT`; None for anything else (argparse then explains)."""
    if len(argv) == 2 and argv[0] in ("stop", "status") and valid_key(argv[1]):
        return argv[0], argv[1], None, None
    if (len(argv) == 6 and argv[0] == "start" and valid_key(argv[1]) and argv[2] == "--dir"
            and argv[4] == "--port" and _is_port(argv[5])
            and not argv[3].startswith("-")):
        return "start", argv[1], argv[3], int(argv[5])
    return None


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    plain = _plain_command(arguments)
    if plain is not None:
        return _run(*plain)
    return _main_argparse(arguments)


def _run(action: str, key: str, directory: str | None, port: int | None) -> int:
    try:
        if action == "status":
            record = running(key)
            print(f"running pid {record['pid']} port {record['port']}" if record else "stopped")
            return 0 if record else STOPPED
        if action == "start":
            assert directory is not None and port is not None
            changed = start(key, directory, port)
        else:
            changed = stop(key)
    except (ServiceError, OSError, ValueError, KeyError) as exc:
        print(f"fjmig-svc: error: {exc}", file=sys.stderr)
        return 1
    print("changed" if changed else "ok")
    return 0


def _main_argparse(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="fjmig-svc", description="Start, stop or query a lab system's service.")
    parser.add_argument("action", choices=("start", "stop", "status"))
    parser.add_argument("key", help="SYSTEM_KEY (<dept>__<system>)")
    parser.add_argument("--dir", help="DATA_PATH to serve (start)")
    parser.add_argument("--port", type=_port, help="port to listen on (start)")
    args = parser.parse_args(argv)
    if not valid_key(args.key):
        parser.error(f"{args.key!r} is not a SYSTEM_KEY (<dept>__<system>)")
    if args.action == "start" and (args.dir is None or args.port is None):
        parser.error("start needs --dir DATA_PATH and --port PORT")
    return _run(args.action, args.key, args.dir, args.port)


if __name__ == "__main__":
    sys.exit(main())
