"""Tamper detection: the hash chain of the event log, its recorded head, and a replay of the
events against the `steps` and `approvals` tables. An edited, inserted or deleted row anywhere
shows up here (`fjmig journal verify`)."""

from __future__ import annotations

import hashlib
import json
import sqlite3

from .records import VerifyResult

GENESIS = "0" * 64


def event_hash(prev: str, seq: int, at: str, run_id: int | None, kind: str, step_id: str | None, data: str) -> str:
    payload = json.dumps([prev, seq, at, run_id, kind, step_id, data], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def verify(conn: sqlite3.Connection) -> VerifyResult:
    problems: list[str] = []
    prev, expected_seq, count = GENESIS, 1, 0
    replay: dict[str, str] = {}
    approvals: dict[str, str] = {}
    for seq, at, run_id, kind, step_id, data, prev_hash, digest in conn.execute(
        "SELECT seq, at, run_id, kind, step_id, data, prev_hash, hash FROM events ORDER BY seq"
    ):
        count += 1
        if seq != expected_seq:
            problems.append(f"event {expected_seq} is missing (next is {seq})")
        if prev_hash != prev:
            problems.append(f"event {seq}: does not chain to the event before it")
        if event_hash(prev_hash, seq, at, run_id, kind, step_id, data) != digest:
            problems.append(f"event {seq}: content does not match its hash (edited)")
        if kind == "step" and step_id:
            try:
                replay[step_id] = json.loads(data)["state"]
            except (ValueError, KeyError, TypeError):
                problems.append(f"event {seq}: unreadable data")
        elif kind == "approval" and step_id:
            approvals[step_id] = json.loads(data).get("by", "")
        prev, expected_seq = digest, seq + 1
    head_row = conn.execute("SELECT value FROM meta WHERE key = 'head'").fetchone()
    head = f"{count}:{prev}" if count else ""
    if count and (head_row is None or head_row[0] != f"{expected_seq - 1}:{prev}"):
        problems.append(f"the recorded head ({head_row[0] if head_row else 'none'}) is not the last event: "
                        "events were deleted or added")
    for step_id, state in conn.execute("SELECT step_id, state FROM steps"):
        if replay.get(step_id) != state:
            problems.append(f"step {step_id}: state {state!r} is not what its events say "
                            f"({replay.get(step_id, 'no events')!r})")
    for step_id in replay.keys() - {r[0] for r in conn.execute("SELECT step_id FROM steps")}:
        problems.append(f"step {step_id}: has events but no state row (deleted)")
    recorded = {r[0]: r[1] for r in conn.execute("SELECT step_id, approved_by FROM approvals")}
    if recorded != approvals:
        for step_id in sorted(recorded.keys() | approvals.keys()):
            if recorded.get(step_id) != approvals.get(step_id):
                problems.append(f"approval of {step_id}: {recorded.get(step_id)!r} is not what its events say "
                                f"({approvals.get(step_id)!r})")
    return VerifyResult(not problems, count, head, problems)
