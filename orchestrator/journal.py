"""The journal: SQLite record of runs, step states, approvals and an append-only event log.

Every state change is one transaction that appends a hash-chained event and updates the
`steps` table, so a process killed at any moment leaves a consistent journal: a step is either
recorded as finished or it is not (and is then rerun; the playbooks are idempotent). The event
log is guarded against UPDATE/DELETE by triggers and against editing behind SQLite's back by
the hash chain, the recorded head, and a replay of the events against the `steps` table
(`verify`).
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import hashlib
import json
import os
import socket
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

STATES = ("pending", "running", "succeeded", "failed", "held", "blocked", "interrupted", "rolled-back")
GENESIS = "0" * 64

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


class JournalError(Exception):
    """The journal cannot be used (corrupt, locked, not a journal)."""


class JournalLocked(JournalError):
    def __init__(self, holder: dict[str, Any], path: Path) -> None:
        self.holder = holder
        super().__init__(
            f"{path} is in use by another fjmig run: pid {holder.get('pid')} on {holder.get('host')} "
            f"(operator {holder.get('operator')}) since {holder.get('since')}"
        )


@dataclass
class StepRecord:
    step_id: str
    state: str
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    message: str | None
    duration: float | None = None
    stats: dict[str, Any] | None = None
    run_id: int | None = None


@dataclass
class Approval:
    step_id: str
    approved_by: str
    approved_at: datetime


@dataclass
class VerifyResult:
    ok: bool
    events: int
    head: str
    problems: list[str]


def now() -> datetime:
    return datetime.now(UTC)


def operator_name() -> str:
    try:
        return os.environ.get("FJMIG_OPERATOR") or getpass.getuser()
    except (KeyError, OSError):
        return f"uid-{os.getuid()}"


def _ts(value: datetime | None) -> str | None:
    return value.isoformat(timespec="microseconds") if value else None


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _event_hash(prev: str, seq: int, at: str, run_id: int | None, kind: str, step_id: str | None,
                data: str) -> str:
    payload = json.dumps([prev, seq, at, run_id, kind, step_id, data], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


class Journal:
    """One journal file. Open with `Journal.open(path)`; use as a context manager."""

    def __init__(self, path: Path, conn: sqlite3.Connection, readonly: bool) -> None:
        self.path = path
        self.conn = conn
        self.readonly = readonly
        self._lock_fd: int | None = None
        self.took_over: dict[str, Any] | None = None

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
        self.unlock()
        self.conn.close()

    # -- the run lock -------------------------------------------------------------------------

    @property
    def lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def lock(self) -> None:
        """Take the run lock or raise JournalLocked naming the holder.

        flock is released by the kernel when its holder dies, even by SIGKILL, so a stale lock
        is simply acquirable; the previous holder's record is kept in `took_over`."""
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise JournalLocked(holder, self.path) from None
        previous = _read_holder(fd)
        if previous.get("pid") and previous.get("active"):
            self.took_over = previous
        record = {"host": socket.gethostname(), "pid": os.getpid(), "operator": operator_name(),
                  "since": _ts(now()), "active": True}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        os.fsync(fd)
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is None:
            return
        holder = _read_holder(self._lock_fd)
        holder["active"] = False
        os.ftruncate(self._lock_fd, 0)
        os.pwrite(self._lock_fd, json.dumps(holder).encode(), 0)
        fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        os.close(self._lock_fd)
        self._lock_fd = None

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
        at_text = _ts(at) or ""
        text = json.dumps(data, ensure_ascii=False, sort_keys=True, default=str)
        digest = _event_hash(prev, seq, at_text, run_id, kind, step_id, text)
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
        at = now()
        with self._tx() as conn:
            cur = conn.execute(
                "INSERT INTO runs (started_at, operator, host, pid, args, status) VALUES (?, ?, ?, ?, ?, 'running')",
                (_ts(at), operator, socket.gethostname(), os.getpid(), json.dumps(args, sort_keys=True, default=str)),
            )
            run_id = int(cur.lastrowid or 0)
            self._append(conn, "run-started", run_id, None, {"operator": operator, "args": args}, at)
        return run_id

    def finish_run(self, run_id: int, status: str) -> None:
        at = now()
        with self._tx() as conn:
            conn.execute("UPDATE runs SET finished_at = ?, status = ? WHERE id = ?", (_ts(at), status, run_id))
            self._append(conn, "run-finished", run_id, None, {"status": status}, at)

    def record(self, run_id: int | None, step_id: str, state: str, message: str | None = None,
               stats: dict[str, Any] | None = None) -> None:
        """One step state transition: event and current state in one transaction."""
        if state not in STATES:
            raise ValueError(f"unknown step state {state!r}")
        at = now()
        with self._tx() as conn:
            row = conn.execute("SELECT attempts, started_at FROM steps WHERE step_id = ?", (step_id,)).fetchone()
            attempts, started = (row[0], _dt(row[1])) if row else (0, None)
            if state == "running":
                attempts += 1
                started = at
            finished = at if state in ("succeeded", "failed", "interrupted", "rolled-back") else None
            duration = (at - started).total_seconds() if finished and started else None
            conn.execute(UPSERT_STEP, (step_id, state, attempts, _ts(started), _ts(finished), duration, message,
                                       json.dumps(stats, sort_keys=True) if stats is not None else None, run_id))
            data: dict[str, Any] = {"state": state}
            if message:
                data["message"] = message
            if stats is not None:
                data["stats"] = stats
            self._append(conn, "step", run_id, step_id, data, at)

    def approve(self, step_id: str, by: str) -> Approval:
        at = now()
        with self._tx() as conn:
            conn.execute("INSERT INTO approvals (step_id, approved_by, approved_at) VALUES (?, ?, ?) "
                         "ON CONFLICT(step_id) DO UPDATE SET approved_by = excluded.approved_by, "
                         "approved_at = excluded.approved_at", (step_id, by, _ts(at)))
            self._append(conn, "approval", None, step_id, {"by": by}, at)
        return Approval(step_id, by, at)

    def note(self, run_id: int | None, kind: str, data: dict[str, Any], step_id: str | None = None) -> None:
        """An audit event that changes no state (e.g. a lock takeover, a rollback request)."""
        with self._tx() as conn:
            self._append(conn, kind, run_id, step_id, data, now())

    def interrupt_stale(self, run_id: int) -> list[str]:
        """Steps left `running` by a process that died: mark them interrupted (they will rerun)."""
        stale = [r[0] for r in self.conn.execute("SELECT step_id FROM steps WHERE state = 'running'")]
        for step_id in stale:
            self.record(run_id, step_id, "interrupted", "the run that started it stopped before it finished")
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.execute("UPDATE runs SET status = 'died', finished_at = ? WHERE status = 'running' AND id != ?",
                          (_ts(now()), run_id))
        self.conn.execute("COMMIT")
        return stale

    # -- reading ------------------------------------------------------------------------------

    def step_records(self) -> dict[str, StepRecord]:
        rows = self.conn.execute(
            "SELECT step_id, state, attempts, started_at, finished_at, message, duration, stats, run_id FROM steps"
        )
        return {
            r[0]: StepRecord(r[0], r[1], r[2], _dt(r[3]), _dt(r[4]), r[5], r[6],
                             json.loads(r[7]) if r[7] else None, r[8])
            for r in rows
        }

    def approvals(self) -> dict[str, Approval]:
        rows = self.conn.execute("SELECT step_id, approved_by, approved_at FROM approvals")
        return {r[0]: Approval(r[0], r[1], datetime.fromisoformat(r[2])) for r in rows}

    def runs(self) -> list[dict[str, Any]]:
        cur = self.conn.execute("SELECT id, started_at, finished_at, operator, host, pid, status FROM runs ORDER BY id")
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, row, strict=True)) for row in cur]

    def events(self, step_id: str | None = None) -> list[dict[str, Any]]:
        query = "SELECT seq, at, run_id, kind, step_id, data FROM events"
        params: tuple[Any, ...] = ()
        if step_id:
            query += " WHERE step_id = ?"
            params = (step_id,)
        cur = self.conn.execute(query + " ORDER BY seq", params)
        return [{"seq": r[0], "at": r[1], "run_id": r[2], "kind": r[3], "step_id": r[4], "data": json.loads(r[5])}
                for r in cur]

    def verify(self) -> VerifyResult:
        """Check the hash chain, the recorded head, and that replaying the step events gives the
        `steps` table: an edited, inserted or deleted row anywhere shows up here."""
        problems: list[str] = []
        prev, expected_seq, count = GENESIS, 1, 0
        replay: dict[str, str] = {}
        approvals: dict[str, str] = {}
        for seq, at, run_id, kind, step_id, data, prev_hash, digest in self.conn.execute(
            "SELECT seq, at, run_id, kind, step_id, data, prev_hash, hash FROM events ORDER BY seq"
        ):
            count += 1
            if seq != expected_seq:
                problems.append(f"event {expected_seq} is missing (next is {seq})")
            if prev_hash != prev:
                problems.append(f"event {seq}: does not chain to the event before it")
            if _event_hash(prev_hash, seq, at, run_id, kind, step_id, data) != digest:
                problems.append(f"event {seq}: content does not match its hash (edited)")
            if kind == "step" and step_id:
                try:
                    replay[step_id] = json.loads(data)["state"]
                except (ValueError, KeyError, TypeError):
                    problems.append(f"event {seq}: unreadable data")
            elif kind == "approval" and step_id:
                approvals[step_id] = json.loads(data).get("by", "")
            prev, expected_seq = digest, seq + 1
        head_row = self.conn.execute("SELECT value FROM meta WHERE key = 'head'").fetchone()
        head = f"{count}:{prev}" if count else ""
        if count and (head_row is None or head_row[0] != f"{expected_seq - 1}:{prev}"):
            problems.append(f"the recorded head ({head_row[0] if head_row else 'none'}) is not the last event: "
                            "events were deleted or added")
        for step_id, state in self.conn.execute("SELECT step_id, state FROM steps"):
            if replay.get(step_id) != state:
                problems.append(f"step {step_id}: state {state!r} is not what its events say "
                                f"({replay.get(step_id, 'no events')!r})")
        for step_id in replay.keys() - {r[0] for r in self.conn.execute("SELECT step_id FROM steps")}:
            problems.append(f"step {step_id}: has events but no state row (deleted)")
        recorded = {r[0]: r[1] for r in self.conn.execute("SELECT step_id, approved_by FROM approvals")}
        if recorded != approvals:
            for step_id in sorted(recorded.keys() | approvals.keys()):
                if recorded.get(step_id) != approvals.get(step_id):
                    problems.append(f"approval of {step_id}: {recorded.get(step_id)!r} is not what its events say "
                                    f"({approvals.get(step_id)!r})")
        return VerifyResult(not problems, count, head, problems)


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        raw = os.pread(fd, 4096, 0)
        value = json.loads(raw.decode() or "{}")
        return value if isinstance(value, dict) else {}
    except (OSError, ValueError):
        return {}
