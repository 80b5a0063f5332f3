"""The journal: state transitions, the run lock, tamper detection, crash consistency."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.journal import Journal, JournalLocked


def _journal(tmp_path: Path) -> Journal:
    return Journal.open(tmp_path / "journal.db")


def test_transitions_attempts_and_durations(tmp_path: Path) -> None:
    with _journal(tmp_path) as journal:
        run = journal.start_run("alice", {"parallel": 2})
        journal.record(run, "d/s:presync", "running")
        journal.record(run, "d/s:presync", "failed", "boom")
        journal.record(run, "d/s:presync", "running")
        journal.record(run, "d/s:presync", "succeeded", stats={"changed": 3})
        record = journal.step_records()["d/s:presync"]
        assert record.state == "succeeded"
        assert record.attempts == 2
        assert record.stats == {"changed": 3}
        assert record.duration is not None and record.duration >= 0
        assert [e["data"]["state"] for e in journal.events("d/s:presync")] == [
            "running", "failed", "running", "succeeded"]
        assert journal.runs()[0]["operator"] == "alice"
        assert journal.verify().ok


def test_unknown_state_is_rejected(tmp_path: Path) -> None:
    with _journal(tmp_path) as journal, pytest.raises(ValueError):
        journal.record(None, "d/s:presync", "done")


def test_second_lock_names_the_holder(tmp_path: Path) -> None:
    first = _journal(tmp_path)
    first.lock()
    second = _journal(tmp_path)
    with pytest.raises(JournalLocked) as raised:
        second.lock()
    message = str(raised.value)
    assert f"pid {os.getpid()}" in message and "since" in message
    first.close()
    second.lock()  # released by the first holder: acquirable
    assert second.took_over is None  # a clean release is not a takeover
    second.close()


def test_stale_lock_of_a_killed_process_is_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    script = textwrap.dedent(f"""
        import time
        from orchestrator.journal import Journal
        j = Journal.open({str(path)!r}); j.lock()
        run = j.start_run("bob", {{}})
        j.record(run, "d/s:cutover", "running")
        print("locked", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    with pytest.raises(JournalLocked):
        Journal.open(path).lock()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with Journal.open(path) as journal:
        journal.lock()
        assert journal.took_over is not None and journal.took_over["pid"] == proc.pid
        run = journal.start_run("carol", {})
        assert journal.interrupt_stale(run) == ["d/s:cutover"]
        assert journal.step_records()["d/s:cutover"].state == "interrupted"
        assert [r["status"] for r in journal.runs()] == ["died", "running"]
        assert journal.verify().ok


def _tamper(path: Path, sql: str) -> None:
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER IF EXISTS events_append_only_update")
    conn.execute("DROP TRIGGER IF EXISTS events_append_only_delete")
    conn.execute(sql)
    conn.commit()
    conn.close()


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("UPDATE events SET data = '{\"state\": \"succeeded\"}' WHERE seq = 3", "edited"),
        ("DELETE FROM events WHERE seq = 2", "missing"),
        ("DELETE FROM events WHERE seq = (SELECT max(seq) FROM events)", "head"),
        ("UPDATE steps SET state = 'succeeded'", "not what its events say"),
        ("DELETE FROM steps", "deleted"),
        ("UPDATE approvals SET approved_by = 'mallory'", "approval"),
    ],
)
def test_verify_detects_tampering(tmp_path: Path, sql: str, expected: str) -> None:
    path = tmp_path / "journal.db"
    with Journal.open(path) as journal:
        run = journal.start_run("alice", {})
        journal.record(run, "d/s:presync", "running")
        journal.record(run, "d/s:presync", "failed", "disk full")
        journal.approve("d/s:cutover", "boss")
        journal.finish_run(run, "failed")
        assert journal.verify().ok
    _tamper(path, sql)
    with Journal.open(path, readonly=True) as journal:
        result = journal.verify()
    assert not result.ok
    assert any(expected in problem for problem in result.problems), result.problems
    assert main(["journal", "verify", "--journal", str(path)]) == 1


def test_event_log_refuses_update_and_delete(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    with Journal.open(path) as journal:
        journal.start_run("alice", {})
    conn = sqlite3.connect(path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE events SET kind = 'x'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM events")


def test_killed_writer_leaves_a_consistent_journal(tmp_path: Path) -> None:
    """SIGKILL in the middle of a stream of transitions: every committed transition is there,
    the chain verifies, and nothing half-written remains."""
    path = tmp_path / "journal.db"
    script = textwrap.dedent(f"""
        from orchestrator.journal import Journal
        j = Journal.open({str(path)!r})
        run = j.start_run("x", {{}})
        i = 0
        while True:
            j.record(run, f"d/s{{i % 50}}:presync", "running")
            j.record(run, f"d/s{{i % 50}}:presync", "succeeded")
            i += 1
    """)
    proc = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.3)
        if path.exists():
            try:
                conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
                count = conn.execute("SELECT count(*) FROM events").fetchone()[0]
                conn.close()
            except sqlite3.DatabaseError:
                continue
            if count > 200:
                break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with Journal.open(path) as journal:
        result = journal.verify()
        assert result.ok, result.problems
        assert result.events > 200
        states = {r.state for r in journal.step_records().values()}
        assert states <= {"running", "succeeded"}


def test_journal_verify_cli_on_intact_and_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "journal.db"
    with Journal.open(path) as journal:
        journal.start_run("alice", {})
    assert main(["journal", "verify", "--journal", str(path)]) == 0
    assert "intact" in capsys.readouterr().out
    assert main(["journal", "verify", "--journal", str(tmp_path / "none.db")]) == 1
    assert main(["journal", "verify", "--journal", str(path), "--format", "json"]) == 0
    assert '"ok": true' in capsys.readouterr().out


def test_not_a_journal_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "journal.db"
    path.write_bytes(b"this is not sqlite" * 100)
    assert main(["journal", "verify", "--journal", str(path)]) == 1
    err = capsys.readouterr().err
    assert "not a usable fjmig journal" in err and "Traceback" not in err
