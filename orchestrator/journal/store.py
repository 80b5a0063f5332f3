"""The journal's store: SQLite record of runs, step states, approvals and an append-only event log.

Every state change is one transaction that appends a hash-chained event and updates the
`steps` table, so a process killed at any moment leaves a consistent journal: a step is either
recorded as finished or it is not (and is then rerun; the playbooks are idempotent). The event
log is guarded against UPDATE/DELETE by triggers and against editing behind SQLite's back by
the hash chain, the recorded head, and a replay of the events (verify.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from . import read, records
from .lock import RunLock
from .records import FINISHED_STATES, STATES, Approval, JournalError, StepRecord, VerifyResult, timestamp
from .verify import GENESIS, event_hash, verify

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY, started_at TEXT NOT NULL, finished_at TEXT, operator TEXT NOT NULL,
    host TEXT NOT NULL, pid INTEGER NOT NULL, args TEXT NOT NULL, status TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS steps (
    step_id TEXT PRIMARY KEY, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    started_at TEXT, finished_at TEXT, duration REAL, message TEXT, stats TEXT, run_id INTEGER);
CREATE TABLE IF NOT EXISTS approvals (
    step_id TEXT PRIMARY KEY, approved_by TEXT NOT NULL, approved_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY, at TEXT NOT NULL, run_id INTEGER, kind TEXT NOT NULL, step_id TEXT,
    data TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
CREATE TRIGGER IF NOT EXISTS events_append_only_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'the journal event log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_append_only_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'the journal event log is append-only'); END;
"""

UPSERT_STEP = """
INSERT INTO steps (step_id, state, attempts, started_at, finished_at, duration, message, stats, run_id)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT(step_id) DO UPDATE SET state = excluded.state, attempts = excluded.attempts,
    started_at = excluded.started_at, finished_at = excluded.finished_at, duration = excluded.duration,
    message = excluded.message, stats = excluded.stats, run_id = excluded.run_id
"""


class Journal:
    """One journal file. Open with `Journal.open(path)`; use as a context manager."""

    def __init__(self, path: Path, conn: sqlite3.Connection, readonly: bool) -> None:
        self.path = path
        self.conn = conn
        self.readonly = readonly
        self.run_lock = RunLock(path)

    @classmethod
    def open(cls, path: str | Path, readonly: bool = False) -> Journal:
        path = Path(path)
        if readonly and not path.exists():
            raise JournalError(f"{path}: no journal (nothing has run yet)")
        if not readonly:
            path.parent.mkdir(parents=True, exist_ok=True)
        try:
            uri = f"file:{path}?mode=ro" if readonly else f"file:{path}"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 30000")
            if not readonly:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = FULL")
                conn.executescript(SCHEMA)
            else:
                conn.execute("SELECT count(*) FROM events").fetchone()
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"{path}: not a usable fjmig journal ({exc})") from None
        return cls(path, conn, readonly)

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.run_lock.release()
        self.conn.close()

    # -- the run lock (lock.py) -----------------------------------------------------------------

    @property
    def lock_path(self) -> Path:
        return self.run_lock.path

    @property
    def took_over(self) -> dict[str, Any] | None:
        return self.run_lock.took_over

    def lock(self) -> None:
        """Take the run lock or raise JournalLocked naming the holder."""
        self.run_lock.acquire()

    def unlock(self) -> None:
        self.run_lock.release()

    # -- writing ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _append(self, conn: sqlite3.Connection, kind: str, run_id: int | None, step_id: str | None,
                data: dict[str, Any], at: datetime) -> None:
        row = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (row[0] + 1, row[1]) if row else (1, GENESIS)
        at_text = timestamp(at) or ""
        text = json.dumps(data, ensure_ascii=False, sort_keys=True, default=str)
        digest = event_hash(prev, seq, at_text, run_id, kind, step_id, text)
        conn.execute("INSERT INTO events (seq, at, run_id, kind, step_id, data, prev_hash, hash) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (seq, at_text, run_id, kind, step_id, text, prev, digest))
        conn.execute("INSERT INTO meta (key, value) VALUES ('head', ?) ON CONFLICT(key) DO UPDATE SET value = "
                     "excluded.value", (f"{seq}:{digest}",))

    def identity(self) -> str:
        """A random id of this journal, made on first use. Jobs are tagged with it and their step id
        (runner.job_token) so that what a run left on the hosts can be found and stopped."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'id'").fetchone()
        if row:
            return str(row[0])
        with self._tx() as conn:
            conn.execute("INSERT INTO meta (key, value) VALUES ('id', ?) ON CONFLICT(key) DO NOTHING",
                         (uuid.uuid4().hex,))
        return str(self.conn.execute("SELECT value FROM meta WHERE key = 'id'").fetchone()[0])

    def start_run(self, operator: str, args: dict[str, Any]) -> int:
        at = records.now()
        with self._tx() as conn:
            cur = conn.execute(
                "INSERT INTO runs (started_at, operator, host, pid, args, status) VALUES (?, ?, ?, ?, ?, 'running')",
                (timestamp(at), operator, socket.gethostname(), os.getpid(),
                 json.dumps(args, sort_keys=True, default=str)),
            )
            run_id = int(cur.lastrowid or 0)
            self._append(conn, "run-started", run_id, None, {"operator": operator, "args": args}, at)
        return run_id

    def finish_run(self, run_id: int, status: str) -> None:
        at = records.now()
        with self._tx() as conn:
            conn.execute("UPDATE runs SET finished_at = ?, status = ? WHERE id = ?", (timestamp(at), status, run_id))
            self._append(conn, "run-finished", run_id, None, {"status": status}, at)

    def record(self, run_id: int | None, step_id: str, state: str, message: str | None = None,
               stats: dict[str, Any] | None = None) -> None:
        """One step state transition: event and current state in one transaction."""
        if state not in STATES:
            raise ValueError(f"unknown step state {state!r}")
        at = records.now()
        with self._tx() as conn:
            row = conn.execute("SELECT attempts, started_at FROM steps WHERE step_id = ?", (step_id,)).fetchone()
            attempts, started = (row[0], records.parse_timestamp(row[1])) if row else (0, None)
            if state == "running":
                attempts += 1
                started = at
            finished = at if state in FINISHED_STATES else None
            duration = (at - started).total_seconds() if finished and started else None
            conn.execute(UPSERT_STEP, (step_id, state, attempts, timestamp(started), timestamp(finished), duration,
                                       message, json.dumps(stats, sort_keys=True) if stats is not None else None,
                                       run_id))
            data: dict[str, Any] = {"state": state}
            if message:
                data["message"] = message
            if stats is not None:
                data["stats"] = stats
            self._append(conn, "step", run_id, step_id, data, at)

    def approve(self, step_id: str, by: str) -> Approval:
        at = records.now()
        with self._tx() as conn:
            conn.execute("INSERT INTO approvals (step_id, approved_by, approved_at) VALUES (?, ?, ?) "
                         "ON CONFLICT(step_id) DO UPDATE SET approved_by = excluded.approved_by, "
                         "approved_at = excluded.approved_at", (step_id, by, timestamp(at)))
            self._append(conn, "approval", None, step_id, {"by": by}, at)
        return Approval(step_id, by, at)

    def note(self, run_id: int | None, kind: str, data: dict[str, Any], step_id: str | None = None) -> None:
        """An audit event that changes no state (e.g. a lock takeover, a rollback request)."""
        with self._tx() as conn:
            self._append(conn, kind, run_id, step_id, data, records.now())

    def interrupt_stale(self, run_id: int) -> list[str]:
        """Steps left `running` by a process that died: mark them interrupted (they will rerun)."""
        stale = [r[0] for r in self.conn.execute("SELECT step_id FROM steps WHERE state = 'running'")]
        for step_id in stale:
            self.record(run_id, step_id, "interrupted", "the run that started it stopped before it finished")
        with self._tx() as conn:
            conn.execute("UPDATE runs SET status = 'died', finished_at = ? WHERE status = 'running' AND id != ?",
                         (timestamp(records.now()), run_id))
        return stale

    # -- reading (read.py, verify.py) ---------------------------------------------------------

    def step_records(self) -> dict[str, StepRecord]:
        return read.step_records(self.conn)

    def approvals(self) -> dict[str, Approval]:
        return read.approvals(self.conn)

    def runs(self) -> list[dict[str, Any]]:
        return read.runs(self.conn)

    def events(self, step_id: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        return read.events(self.conn, step_id, kind)

    def verify(self) -> VerifyResult:
        return verify(self.conn)
