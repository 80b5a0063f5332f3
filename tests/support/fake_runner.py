"""A job runner that runs no playbook, for the executor's unit tests (and the journal's approvals
they need): the executor's decisions without a lab or ansible."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from orchestrator.execution.jobs import Job
from orchestrator.execution.runner import JobResult, RunnerConfig
from orchestrator.journal import Journal
from orchestrator.plans.loader import PlanSet
from orchestrator.plans.steps import build_graph

OK = JobResult("successful", 0, None, {"ok": {"h": 1}, "changed": {"h": 1}}, changed=1)


def result(status: str, message: str | None = None) -> JobResult:
    return JobResult(status, 0 if status == "successful" else 2, message, {}, changed=int(status == "successful"))


@dataclass
class FakeRunner:
    """Runs no playbook: answers each step from a script (step id -> results, one per attempt, the
    last one repeated; default success) and records the jobs it was asked to run. A presync that
    runs its cutover in the same job answers as the presync until its copy succeeds (reported as
    cutover.yml's presync play reports it), then as the cutover."""

    script: dict[str, list[JobResult]] = field(default_factory=dict)
    calls: list[Job] = field(default_factory=list)
    block: set[str] = field(default_factory=set)
    """Steps whose job runs until the run is cancelled (then it ends `canceled`)."""
    started: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, job: Job, config: RunnerConfig, cancel: threading.Event,
                 on_presync_done: Callable[[dict[str, int]], None] | None) -> JobResult:
        with self.lock:
            self.calls.append(job)
        if job.step_id in self.block:
            self.started.set()
            cancel.wait(30)
            return result("canceled", "interrupted")
        first = self._next(job.step_id)
        if on_presync_done is None or first.status != "successful":
            return first
        on_presync_done({"changed": 1, "bytes": 1000})
        return self._next(job.also[0])

    def _next(self, step_id: str) -> JobResult:
        with self.lock:
            queue = self.script.get(step_id) or [OK]
            return queue.pop(0) if len(queue) > 1 else queue[0]

    def steps(self) -> list[str]:
        return [job.step_id for job in self.calls if job.step_id != "cancel"]


def approve_all(plans: PlanSet, journal: Journal) -> None:
    for step in build_graph(plans).steps.values():
        if step.approval:
            journal.approve(step.id, "tester")
