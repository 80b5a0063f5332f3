#!/usr/bin/env python3
"""fjmig-svc: the lab's service control program (docs/EXECUTION.md, `fjmig_service_ctl`).

    fjmig-svc start  SYSTEM_KEY --dir DATA_PATH --port PORT   serve DATA_PATH over HTTP on 0.0.0.0:PORT
    fjmig-svc stop   SYSTEM_KEY                                stop it
    fjmig-svc status SYSTEM_KEY                                exit 0 running, 3 stopped

`start` and `stop` print `changed` or `ok` (playbooks use it for `changed_when`). A pid file in
/root/.fjmig/services/ (per lab host, since each host has its own /root) records the pid and the
process start time, so a recycled pid is never mistaken for the service and never killed.
Standard library only: it runs on every lab host with the system python3.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import functools
import json
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

RUN_DIR = Path(os.environ.get("FJMIG_SVC_DIR", "/root/.fjmig/services"))
KEY_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,40}__[a-z][a-z0-9-]{0,40}$")
STOPPED = 3
STOP_TIMEOUT = 5.0


class ServiceError(Exception):
    """A start that cannot work (port taken, no such directory): exit 1 with the reason."""


def _starttime(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks); None if gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in {"Z", "X"}:
        return None
    return fields[19]


def _pid_file(key: str) -> Path:
    return RUN_DIR / f"{key}.pid"


def running(key: str) -> dict[str, Any] | None:
    """The pid file's record if its process is alive and is the one that wrote it."""
    try:
        record = json.loads(_pid_file(key).read_text())
        pid, started = int(record["pid"]), str(record["starttime"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record if _starttime(pid) == started else None


@contextlib.contextmanager
def _locked(key: str) -> Any:
    """One start or stop of a service at a time."""
    RUN_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)
    with open(RUN_DIR / f"{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield lock.fileno()


def _serve(server: Any, key: str, directory: str, port: int, ready: int) -> None:
    """In the daemon: record ourselves, tell the starter we are up, serve until killed."""
    os.chdir("/")
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    pid = os.getpid()
    record = {"pid": pid, "starttime": _starttime(pid), "key": key, "dir": directory, "port": port}
    tmp = _pid_file(key).with_suffix(f".tmp{pid}")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, _pid_file(key))
    os.write(ready, b"ok")
    os.close(ready)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    server.serve_forever()


def _daemonize(server: Any, key: str, directory: str, port: int, lock: int) -> None:
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
            _serve(server, key, directory, port, write_end)
        finally:
            os._exit(1)
    os.close(write_end)
    server.server_close()
    os.waitpid(child, 0)
    with os.fdopen(read_end, "rb") as pipe:
        if pipe.read() != b"ok":
            raise ServiceError(f"{key}: the service did not start")


def start(key: str, directory: str, port: int) -> bool:
    """Serve `directory` on `port`; False (no-op) when already running."""
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    if not os.path.isdir(directory):
        raise ServiceError(f"{key}: no such directory {directory}")
    with _locked(key) as lock:
        if running(key):
            return False

        class Quiet(SimpleHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

        handler = functools.partial(Quiet, directory=directory)
        try:
            server = ThreadingHTTPServer(("0.0.0.0", port), handler)  # noqa: S104 - the lab host's own namespace
        except OSError as exc:
            raise ServiceError(f"{key}: cannot listen on port {port}: {exc.strerror}") from None
        server.daemon_threads = True
        _daemonize(server, key, directory, port, lock)
        return True


def stop(key: str) -> bool:
    """Stop the service; False (no-op) when it was not running."""
    with _locked(key):
        record = running(key)
        if record is None:
            with contextlib.suppress(FileNotFoundError):
                _pid_file(key).unlink()
            return False
        pid, started = int(record["pid"]), str(record["starttime"])
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while _starttime(pid) == started and time.monotonic() < deadline:
            time.sleep(0.02)
        if _starttime(pid) == started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _pid_file(key).unlink(missing_ok=True)
        return True


def start_many(entries: list[dict[str, Any]]) -> dict[str, bool]:
    """The lab's bulk start (one interpreter per host instead of one per service)."""
    return {e["key"]: start(e["key"], e["dir"], int(e["port"])) for e in entries}


def _port(text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (1-65535)")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fjmig-svc", description="Start, stop or query a lab system's service.")
    parser.add_argument("action", choices=("start", "stop", "status", "start-many"))
    parser.add_argument("key", help="SYSTEM_KEY (<dept>__<system>); for start-many, a JSON file of "
                        "[{key, dir, port}]")
    parser.add_argument("--dir", help="DATA_PATH to serve (start)")
    parser.add_argument("--port", type=_port, help="port to listen on (start)")
    args = parser.parse_args(argv)
    try:
        if args.action == "start-many":
            entries = json.loads(Path(args.key).read_text())
            for entry in entries:
                if not KEY_PATTERN.match(entry["key"]):
                    raise ServiceError(f"{entry['key']!r} is not a SYSTEM_KEY")
            start_many(entries)
            return 0
        if not KEY_PATTERN.match(args.key):
            parser.error(f"{args.key!r} is not a SYSTEM_KEY (<dept>__<system>)")
        key = args.key
        if args.action == "status":
            record = running(key)
            print(f"running pid {record['pid']} port {record['port']}" if record else "stopped")
            return 0 if record else STOPPED
        if args.action == "start":
            if args.dir is None or args.port is None:
                parser.error("start needs --dir DATA_PATH and --port PORT")
            changed = start(key, args.dir, args.port)
        else:
            changed = stop(key)
    except (ServiceError, OSError, ValueError, KeyError) as exc:
        print(f"fjmig-svc: error: {exc}", file=sys.stderr)
        return 1
    print("changed" if changed else "ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
