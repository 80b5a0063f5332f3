"""What `fjmig run`, `status`, `approve`, `rollback` and the demo do around the executor.

A run holds the journal's lock for as long as it runs, turns SIGINT/SIGTERM into a clean
stop, and keeps its job dirs and step logs beside its journal (one jobs dir per journal: a run
reaps only what a dead run of its own journal left). The CLI only parses, renders and maps
errors to exit statuses; everything here is called directly by tests and the demo.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

from ..errors import FjmigError
from ..journal import Approval, Journal, StepRecord
from ..plans.loader import PlanSet
from ..plans.steps import build_graph
from .executor import Event, Executor, RunOptions, RunSummary, rollback_system, select_steps
from .inventory import Inventory, load_inventory
from .jobs import JobError, build_job
from .nodes import NodeError, nodes_of, refusal, unroutable
from .runner import JobResult

EXIT_STATUS = {"succeeded": 0, "failed": 1, "held": 3, "interrupted": 130}
"""A run's outcome as the command's exit status (README, 'Commands')."""


def exit_status(summary: RunSummary) -> int:
    return EXIT_STATUS.get(summary.status, 1)


def jobs_dir(journal: Path) -> Path:
    """Where a journal's runs keep their job dirs: one per journal. A run reaps the job dirs that a
    dead run left (runner.reap_orphans: it kills their playbooks), which is safe only for the
    journal whose lock it holds; a run of another journal in the same directory may be alive."""
    return journal.parent / "jobs" / journal.name


def logs_dir(journal: Path) -> Path:
    """Where a journal's runs keep each step's playbook output."""
    return journal.parent / "logs"


def options_for(journal: Path, **choices: Any) -> RunOptions:
    """Run options whose job dirs and logs live beside JOURNAL."""
    return replace(RunOptions(**choices), log_dir=logs_dir(journal), work_dir=jobs_dir(journal))


def lab_targets(state_dir: Path) -> Inventory:
    """The inventory and outputs of the lab in STATE_DIR."""
    from ..lab.state import LabPaths

    paths = LabPaths(state_dir)
    if not paths.inventory.exists():
        raise FjmigError(f"no lab in {state_dir}: run 'fjmig lab up' first")
    return load_inventory(paths.inventory, [paths.outputs])


@contextlib.contextmanager
def locked_journal(path: Path) -> Iterator[Journal]:
    """The journal, opened for writing and held by this process (JournalLocked names the holder)."""
    journal = Journal.open(path)
    try:
        journal.lock()
        yield journal
    finally:
        journal.close()


@contextlib.contextmanager
def stop_on_signals(stop: Callable[[], None], on_stopping: Callable[[], None] = lambda: None) -> Iterator[None]:
    """SIGINT or SIGTERM asks for a clean stop (running jobs cancelled and journaled interrupted);
    a second Ctrl-C falls through to Python's KeyboardInterrupt, which the executor also handles."""
    previous = signal.getsignal(signal.SIGINT)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop()
        on_stopping()
        signal.signal(signal.SIGINT, previous)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def run(plans: PlanSet, inventory: Inventory, journal_path: Path, options: RunOptions,
        on_event: Callable[[Event], None] = lambda e: None,
        on_stopping: Callable[[], None] = lambda: None) -> RunSummary:
    """Run the selected steps under the journal's lock, stopping cleanly on SIGINT/SIGTERM. With
    execution nodes, a run whose jobs some node cannot run is refused before anything starts."""
    with locked_journal(journal_path) as journal:
        check_routes(plans, inventory, journal, options)
        executor = Executor(plans, inventory, journal, options, on_event)
        with stop_on_signals(executor.stop, on_stopping):
            return executor.run()


def check_routes(plans: PlanSet, inventory: Inventory, journal: Journal, options: RunOptions) -> None:
    """Every job the run may start has an execution node that reaches all its hosts (nodes.py);
    NodeError names each one that has none, and its hosts. Nothing to check without nodes."""
    nodes = nodes_of(inventory)
    if not nodes:
        return
    graph = build_graph(plans)
    done = {s for s, r in journal.step_records().items() if r.state == "succeeded"}
    jobs = []
    for step_id in sorted(select_steps(graph, options.only, options.until) - done):
        with contextlib.suppress(JobError):  # (such a step fails with its reason when its turn comes)
            if graph.steps[step_id].kind != "milestone":
                jobs.append(build_job(graph.steps[step_id], plans, inventory))
    missing = unroutable(nodes, jobs)
    if missing:
        raise NodeError(refusal(nodes, missing, inventory.path))


def check_selection(plans: PlanSet, patterns: list[str]) -> list[str]:
    """The `--only` patterns that name no department or system of the plans."""
    return [p for p in patterns if p not in (plans.systems if "/" in p else plans.departments)]


# -- approvals and rollbacks ------------------------------------------------------------------


@dataclass
class Approved:
    approval: Approval
    required: bool
    """Whether the plan asks for the approval (cutover.approval); approving anyway is harmless."""
    released: bool
    """Whether the approval released a cutover a run had held for it."""


def approve(plans: PlanSet, journal_path: Path, gid: str, by: str) -> Approved:
    """Journal the approval of GID's cutover (a system of PLANS); a cutover held for it goes back
    to pending, so that the next run starts it."""
    _, system = plans.systems[gid]
    if not system.migrates:
        raise FjmigError(f"{gid} is not migrated (it is {system.status}, {system.classification}): "
                         "nothing to approve")
    step_id = f"{gid}:cutover"
    with Journal.open(journal_path) as journal:
        approval = journal.approve(step_id, by)
        record = journal.step_records().get(step_id)
        released = bool(record and record.state == "held")
        if released:
            journal.record(None, step_id, "pending", f"approved by {approval.approved_by}")
    return Approved(approval, bool(system.cutover and system.cutover.approval), released)


def rollback(plans: PlanSet, inventory: Inventory, journal_path: Path, gid: str) -> JobResult:
    """Return GID's service to its source under the journal's lock (executor.rollback_system)."""
    with locked_journal(journal_path) as journal:
        return rollback_system(plans, inventory, journal, gid, work_dir=jobs_dir(journal_path))


# -- status -----------------------------------------------------------------------------------


def status(plans: PlanSet, journal_path: Path) -> dict[str, Any]:
    """Per department: done/total, running, held, failed (with reasons), the downtime of each
    finished cutover; and what the journal's latest run noted (e.g. a playbook server fallback)."""
    if journal_path.exists():
        with Journal.open(journal_path, readonly=True) as journal:
            records, approvals = journal.step_records(), journal.approvals()
            notes = latest_run_notes(journal)
            downtimes = cutover_downtimes(journal.events(kind="step"))
    else:
        records, approvals, notes, downtimes = {}, {}, [], {}
    return {"departments": status_by_department(plans, records, approvals, downtimes), "notes": notes}


def cutover_downtimes(events: list[dict[str, Any]]) -> dict[str, float]:
    """Per cutover, the downtime its users had: every freeze its source aborted (from the freeze to
    the service back on the source), and the one that switched (from its freeze to the switch; or,
    after a switch committed but not completed, from that freeze to the switch that completed it)."""
    total: dict[str, float] = {}
    down_since: dict[str, float] = {}
    for event in events:
        step_id = event["step_id"] or ""
        if not step_id.endswith(":cutover"):
            continue
        stats = event["data"].get("stats") or {}
        state = event["data"].get("state")
        if state == "interrupted":
            total[step_id] = total.get(step_id, 0.0) + float(stats.get("aborted_downtime_s") or 0)
            if stats.get("down_since"):
                down_since.setdefault(step_id, float(stats["down_since"]))
        elif state == "succeeded" and "downtime_s" in stats:
            since = down_since.pop(step_id, None)
            at = datetime.fromisoformat(event["at"]).timestamp()
            switch = at - since if since is not None else float(stats["downtime_s"])
            total[step_id] = round(total.get(step_id, 0.0) + switch, 3)
    return total


NOTED_KINDS = ("playbook-server-fallback", "node-lost")
"""Journal notes of a run that `fjmig status` shows: they change how a run ran, not what it did."""


def latest_run_notes(journal: Journal) -> list[dict[str, Any]]:
    runs = journal.runs()
    if not runs:
        return []
    latest = runs[-1]["id"]
    return [{"run": latest, "kind": e["kind"], "message": e["data"].get("message"), "at": e["at"],
             **({"node": e["data"]["node"], "step": e["step_id"]} if e["data"].get("node") else {})}
            for kind in NOTED_KINDS for e in journal.events(kind=kind) if e["run_id"] == latest]


def status_by_department(plans: PlanSet, records: dict[str, StepRecord], approvals: dict[str, Approval],
                         downtimes: dict[str, float] | None = None) -> dict[str, Any]:
    graph = build_graph(plans)
    out: dict[str, Any] = {}
    for step_id, step in graph.steps.items():
        if step.kind == "milestone":
            continue
        dept = out.setdefault(step.dept, {"done": 0, "total": 0, "running": [], "held": [], "failed": [],
                                          "blocked": [], "interrupted": [], "downtime_s": {}})
        dept["total"] += 1
        record = records.get(step_id)
        state = record.state if record else "pending"
        if state == "succeeded":
            dept["done"] += 1
            if step.kind == "cutover" and record and "downtime_s" in (record.stats or {}):
                dept["downtime_s"][step.subject] = record.stats["downtime_s"]  # type: ignore[index]
        elif state in ("running", "interrupted"):
            dept[state].append(step_id)
            if state == "running" and record and (record.stats or {}).get("node"):
                dept.setdefault("where", {})[step_id] = record.stats["node"]  # type: ignore[index]
        elif state in ("held", "failed", "blocked"):
            dept[state].append({"step": step_id, "reason": record.message if record else None})
    for step_id, seconds in (downtimes or {}).items():  # what users had, aborted freezes included
        step = graph.steps.get(step_id)
        if step is not None and seconds:
            out[step.dept]["downtime_s"][step.subject] = seconds
    for step_id, approval in approvals.items():
        dept = out.get(step_id.split("/", 1)[0])
        if dept is not None:
            dept.setdefault("approved", []).append({"step": step_id, "by": approval.approved_by,
                                                    "at": approval.approved_at.isoformat()})
    return out
