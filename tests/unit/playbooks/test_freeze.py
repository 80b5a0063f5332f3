"""The cutover's dead-man's switch on its own (playbooks/files/freeze.py, freeze_commit.sh), run
here as the source host runs them: the switch's commit and the watchdog's abort exclude each
other, whichever comes first, and nothing is left running once either has decided."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.support import ROOT
from tests.support.waiting import wait_for

FREEZE = (ROOT / "playbooks" / "files" / "freeze.py").read_text(encoding="utf-8")
COMMIT = (ROOT / "playbooks" / "files" / "freeze_commit.sh").read_text(encoding="utf-8")


def arm(state: Path, attempt: str, seconds: float, marker: Path, not_after: float = 0) -> dict:
    """Arm with a 'service start' that records itself in MARKER."""
    start = [sys.executable, "-c", f"open({str(marker)!r}, 'a').write('started\\n')"]
    done = subprocess.run([sys.executable, "-IS", "-c", FREEZE, "arm", str(time.time()), str(state), attempt,
                           str(seconds), str(not_after), "--", *start], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def commit(state: Path, attempt: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", "-c", COMMIT, "fjmig-commit", str(state / attempt)], capture_output=True,
                          text=True, timeout=30)


def resolve(state: Path) -> list[dict]:
    done = subprocess.run([sys.executable, "-IS", "-c", FREEZE, "resolve", str(state)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def watchdog_runs(attempt: str) -> bool:
    """Whether a process whose command line names ATTEMPT (its watchdog) is alive."""
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if attempt.encode() in (proc / "cmdline").read_bytes().split(b"\0") and \
                        (proc / "stat").read_bytes().rsplit(b")", 1)[1].split()[0] != b"Z":
                    return True
            except OSError:
                continue
    return False


def test_a_commit_first_stops_the_watchdog_and_nothing_restarts(tmp_path: Path) -> None:
    marker, state = tmp_path / "started", tmp_path / "freeze"
    armed = arm(state, "a1commitfirst", 600, marker)  # longer than any wait below
    assert armed["deadline"] - armed["armed_at"] == 600 and armed["took_s"] >= 0
    assert watchdog_runs("a1commitfirst")
    done = commit(state, "a1commitfirst")
    assert done.returncode == 0 and done.stdout.strip() == "committed"
    assert wait_for(lambda: not watchdog_runs("a1commitfirst")), "the watchdog outlived the commit"
    assert (state / "a1commitfirst" / "decision" / "by").read_text() == "committed\n"
    assert not marker.exists()
    assert commit(state, "a1commitfirst").returncode == 3  # the decision is taken once


def test_an_abort_first_restores_the_service_and_the_commit_loses(tmp_path: Path) -> None:
    marker, state = tmp_path / "started", tmp_path / "freeze"
    arm(state, "a2abortfirst", 0.05, marker)
    # the watchdog decides at its deadline: wait for its decision, then the switch tries to commit
    assert wait_for(lambda: (state / "a2abortfirst" / "restored.json").exists())
    done = commit(state, "a2abortfirst")
    assert done.returncode == 3
    assert done.stdout.startswith("aborted ") and json.loads(done.stdout.splitlines()[1])["deadline"]
    assert marker.read_text() == "started\n"  # the service was started again, once
    assert wait_for(lambda: not watchdog_runs("a2abortfirst"))


def test_the_deadline_never_passes_the_window_end(tmp_path: Path) -> None:
    marker, state = tmp_path / "started", tmp_path / "freeze"
    armed = arm(state, "a3window", 600, marker, not_after=time.time() + 0.05)
    assert armed["deadline"] - armed["armed_at"] < 1
    assert wait_for(lambda: marker.exists())


def test_resolve_aborts_an_undecided_freeze_at_once_and_clears_everything(tmp_path: Path) -> None:
    marker, state = tmp_path / "started", tmp_path / "freeze"
    arm(state, "a4resolve", 600, marker)
    (attempt,) = resolve(state)
    assert attempt["attempt"] == "a4resolve" and attempt["decision"] == "aborted"
    assert attempt["restored_by"] == "control" and attempt["restore_rc"] == 0
    assert marker.read_text() == "started\n" and not state.exists()
    assert wait_for(lambda: not watchdog_runs("a4resolve"))


def test_resolve_reports_a_commit_and_starts_nothing(tmp_path: Path) -> None:
    marker, state = tmp_path / "started", tmp_path / "freeze"
    arm(state, "a5committed", 600, marker)
    assert commit(state, "a5committed").returncode == 0
    (attempt,) = resolve(state)
    assert attempt["decision"] == "committed" and "restored_at" not in attempt
    assert attempt["armed_at"] <= attempt["decided_at"] <= time.time()  # (the commit's file's time)
    assert not marker.exists() and not state.exists()


def test_a_new_attempt_supersedes_an_undecided_one(tmp_path: Path) -> None:
    marker, state = tmp_path / "started", tmp_path / "freeze"
    arm(state, "a6old", 600, marker)
    armed = arm(state, "a6new", 600, marker)
    assert [p["decision"] for p in armed["previous"]] == ["superseded"]
    assert wait_for(lambda: not watchdog_runs("a6old")) and watchdog_runs("a6new")
    assert sorted(p.name for p in state.iterdir()) == ["a6new"] and not marker.exists()
    resolve(state)
