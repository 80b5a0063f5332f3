"""What a source host decided about a cutover's freeze (playbooks/files/freeze.py), in the journal's
words: the cutover's dead-man's switch either let the switch commit, or started the service on the
source again itself (its deadline passed), or was settled by the control node when a run stopped
during the freeze (cancel.yml). Pure functions over the host's reports."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any


def _when(epoch: float | None) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds") if epoch else "an unknown time"


def lost_commit(output: str) -> dict[str, Any] | None:
    """The decision a failed commit printed (`aborted EPOCH` then the attempt's armed.json), or None
    when the output is not that (the commit failed for another reason: an unreachable source)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    if not lines or not lines[0].startswith(("aborted ", "superseded ")):
        return None
    who, _, at = lines[0].partition(" ")
    attempt: dict[str, Any] = {"decision": who}
    try:
        attempt["decided_at"] = float(at)
    except ValueError:
        attempt["decided_at"] = None
    for line in lines[1:]:
        try:
            armed = json.loads(line)
        except ValueError:
            continue
        if isinstance(armed, dict):
            attempt.update(armed_at=armed.get("armed_at"), deadline=armed.get("deadline"))
    return attempt


def aborted_downtime(attempt: dict[str, Any]) -> float | None:
    """How long users had no service in an attempt whose service came back on the source."""
    end = attempt.get("restored_at") or attempt.get("decided_at")
    start = attempt.get("armed_at")
    return round(end - start, 3) if end and start else None


def settle(attempts: list[dict[str, Any]]) -> tuple[str, dict[str, Any]] | None:
    """The interrupted cutover's journal message and stats from what its source reported: the
    latest attempt decides what users saw. None when no freeze was armed (stopped before it)."""
    if not attempts:
        return None
    latest = max(attempts, key=lambda a: a.get("armed_at") or 0)
    decision = latest.get("decision")
    stats: dict[str, Any] = {"freeze": {"decision": decision, "armed_at": latest.get("armed_at"),
                                        "decided_at": latest.get("decided_at")}}
    if decision == "committed":
        stats["down_since"] = latest.get("armed_at")
        return (f"switch committed at {_when(latest.get('decided_at'))}, not completed: the service is down "
                "until the cutover completes (run again)"), stats
    downtime = aborted_downtime(latest)
    if downtime is not None:
        stats["aborted_downtime_s"] = downtime
    by = "the host" if latest.get("restored_by", "watchdog") == "watchdog" else "the control node"
    when = _when(latest.get("restored_at") or latest.get("decided_at"))
    if decision == "aborted":
        reason = "its deadline passed" if by == "the host" else "the run stopped during the freeze"
        return f"service restored on the source by {by} at {when} ({reason}); run again to cut over", stats
    return f"freeze {decision or 'undecided'}; run again to cut over", stats
