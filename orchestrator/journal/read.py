"""Reading the journal: current step states, approvals, runs, the audit events."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any

from .records import Approval, StepRecord, parse_timestamp


def step_records(conn: sqlite3.Connection) -> dict[str, StepRecord]:
    rows = conn.execute(
        "SELECT step_id, state, attempts, started_at, finished_at, message, duration, stats, run_id FROM steps"
    )
    return {
        r[0]: StepRecord(r[0], r[1], r[2], parse_timestamp(r[3]), parse_timestamp(r[4]), r[5], r[6],
                         json.loads(r[7]) if r[7] else None, r[8])
        for r in rows
    }


def approvals(conn: sqlite3.Connection) -> dict[str, Approval]:
    rows = conn.execute("SELECT step_id, approved_by, approved_at FROM approvals")
    return {r[0]: Approval(r[0], r[1], datetime.fromisoformat(r[2])) for r in rows}


def runs(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    cur = conn.execute("SELECT id, started_at, finished_at, operator, host, pid, status FROM runs ORDER BY id")
    cols = [c[0] for c in cur.description]
    return [dict(zip(cols, row, strict=True)) for row in cur]


def events(conn: sqlite3.Connection, step_id: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
    """The audit events, oldest first; only one step's, or one kind's, when given."""
    query = "SELECT seq, at, run_id, kind, step_id, data FROM events"
    clauses, params = [], []
    if step_id:
        clauses.append("step_id = ?")
        params.append(step_id)
    if kind:
        clauses.append("kind = ?")
        params.append(kind)
    if clauses:
        query += " WHERE " + " AND ".join(clauses)
    cur = conn.execute(query + " ORDER BY seq", params)
    return [{"seq": r[0], "at": r[1], "run_id": r[2], "kind": r[3], "step_id": r[4], "data": json.loads(r[5])}
            for r in cur]
