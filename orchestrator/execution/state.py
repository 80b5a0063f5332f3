"""What one run knows about its steps while it runs: the executor's state, without any I/O.

The executor (executor.py) decides and acts (starts jobs, writes the journal); this object only
keeps the sets a decision reads and applies the transitions a finished decision implies, so that
blocking, holding, fusing, retrying and resuming can be tested without a lab.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from .jobs import Job
from .runner import JobResult

SETTLED = {
    "succeeded": "done",
    "failed": "failed",
    "blocked": "failed",
    "held": "held",
    "interrupted": None,
}
"""Where a step goes when it reaches a state: `done` (never rerun), `failed` (its dependents are
blocked), `held` (waits for an approval or its window); every one of these leaves `todo`."""


@dataclass
class Running:
    """A job in flight: the step it runs now, and for a presync that runs its cutover in the same
    job, the cutover and the signal that the presync's copy succeeded."""

    step_id: str
    job: Job
    attempt: int
    cutover_id: str | None = None
    copied: Future[dict[str, int]] | None = None
    node: str | None = None
    """The execution node the job runs on (None: the control node)."""


@dataclass
class RunState:
    todo: set[str]
    """Selected, not yet settled: runs when its dependencies have succeeded."""
    done: set[str]
    """Succeeded, in the journal or in this run (check mode: in this run's memory only)."""
    failed: set[str] = field(default_factory=set)
    """Failed or blocked: what depends on them is blocked."""
    held: set[str] = field(default_factory=set)
    running: dict[Future[JobResult], Running] = field(default_factory=dict)
    retries: dict[str, tuple[float, int]] = field(default_factory=dict)
    """Step -> (when it is due, its next attempt), after an unreachable host."""
    presync_part: dict[str, dict[str, int]] = field(default_factory=dict)
    """A cutover that ran in one job with its presync: what the presync changed and moved."""
    states: dict[str, str] = field(default_factory=dict)
    """The last state this run gave each step (for the summary)."""
    messages: dict[str, str] = field(default_factory=dict)
    lost_nodes: dict[str, str] = field(default_factory=dict)
    """Execution nodes lost during the run: why (the last time)."""

    def settle(self, step_id: str, state: str, message: str | None = None) -> None:
        """Apply a state the step reached (the executor journals it in the same call)."""
        self.states[step_id] = state
        if message:
            self.messages[step_id] = message
        if state not in SETTLED:
            return
        self.todo.discard(step_id)
        self.retries.pop(step_id, None)
        target = SETTLED[state]
        if target is not None:
            getattr(self, target).add(step_id)

    def in_flight(self) -> set[str]:
        return {entry.step_id for entry in self.running.values()}

    def attempt_due(self, step_id: str, now: float) -> int | None:
        """The attempt a step would start now: 1, its retry's number once due, None while waiting."""
        if step_id not in self.retries:
            return 1
        due, attempt = self.retries[step_id]
        return attempt if due <= now else None

    def retry_later(self, step_id: str, due: float, attempt: int) -> None:
        self.retries[step_id] = (due, attempt)

    def next_retry_in(self, now: float) -> float | None:
        """Seconds until the first pending retry is due (None: no retry pending)."""
        if not self.retries:
            return None
        return max(0.0, min(due for due, _ in self.retries.values()) - now)

    def waitables(self) -> list[Future[Any]]:
        """What the loop waits on: every job, and every fused job's copy signal."""
        copies = [entry.copied for entry in self.running.values() if entry.copied is not None]
        return [*self.running, *copies]

    def copied_fused_jobs(self) -> list[tuple[Future[JobResult], Running]]:
        """Jobs whose presync's copy has succeeded while the cutover still runs in them."""
        return [(future, entry) for future, entry in self.running.items()
                if entry.copied is not None and entry.copied.done()]

    def status(self, cancelled: bool) -> str:
        """The run's outcome: interrupted, failed, held (something waits), or succeeded."""
        if cancelled:
            return "interrupted"
        if self.failed or any(s in ("blocked", "interrupted") for s in self.states.values()):
            return "failed"  # an interrupted step (a freeze its source aborted) needs a run again
        if any(s in ("held", "pending") for s in self.states.values()):
            return "held"
        return "succeeded"
