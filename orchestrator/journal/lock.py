"""The run lock: one `fjmig run` (or rollback) per journal at a time, and who holds it.

flock is released by the kernel when its holder dies, even by SIGKILL, so a stale lock is simply
acquirable; the holder's record (host, pid, operator, since) stays in the lock file, so a refused
run can name the holder and a run that takes over a dead one's lock knows whose it was.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path
from typing import Any

from .records import JournalError, now, operator_name, timestamp


class JournalLocked(JournalError):
    def __init__(self, holder: dict[str, Any], path: Path) -> None:
        self.holder = holder
        super().__init__(
            f"{path} is in use by another fjmig run: pid {holder.get('pid')} on {holder.get('host')} "
            f"(operator {holder.get('operator')}) since {holder.get('since')}"
        )


class RunLock:
    """The lock file beside a journal (`JOURNAL.lock`)."""

    def __init__(self, journal_path: Path) -> None:
        self.journal_path = journal_path
        self.path = journal_path.with_name(journal_path.name + ".lock")
        self._fd: int | None = None
        self.took_over: dict[str, Any] | None = None
        """The record of a holder that died holding the lock, if this acquisition replaced one."""

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise JournalLocked naming the holder."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise JournalLocked(holder, self.journal_path) from None
        previous = _read_holder(fd)
        if previous.get("pid") and previous.get("active"):
            self.took_over = previous
        record = {"host": socket.gethostname(), "pid": os.getpid(), "operator": operator_name(),
                  "since": timestamp(now()), "active": True}
        _write_holder(fd, record)
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        holder = _read_holder(self._fd)
        holder["active"] = False
        _write_holder(self._fd, holder)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None


def _write_holder(fd: int, record: dict[str, Any]) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(record).encode(), 0)


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        raw = os.pread(fd, 4096, 0)
        value = json.loads(raw.decode() or "{}")
        return value if isinstance(value, dict) else {}
    except (OSError, ValueError):
        return {}
