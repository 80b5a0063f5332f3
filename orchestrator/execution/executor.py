"""Executing the step graph: dependency order, `--parallel` jobs, approvals, retries, resume.

The journal is the source of truth for what is done: a step recorded `succeeded` is never run
again; anything else in the selection runs when its dependencies have succeeded. A failed step
blocks what depends on it while independent work goes on. Stopping (Ctrl-C) cancels running
jobs, which the journal records as `interrupted`; they rerun next time (playbooks are
idempotent).
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import networkx as nx

from ..errors import FjmigError
from ..journal import Journal, operator_name
from ..plans.loader import PlanSet
from ..plans.steps import Step, StepGraph, build_graph
from .inventory import Inventory
from .jobs import Job, JobError, build_job
from .runner import (
    JobResult,
    RunnerConfig,
    close_control_masters,
    job_token,
    new_control_dir,
    playbook_server,
    reap_orphans,
    run_job,
    stop_remote,
)

KIND_RANK = {"milestone": 0, "presync": 1, "decommission": 1, "cutover": 2, "verify": 3, "share": 4,
             "retire": 5, "close": 6}
"""`--until KIND` runs the steps whose rank is at most KIND's."""


@dataclass
class RunOptions:
    parallel: int = 4
    only: list[str] = field(default_factory=list)
    until: str | None = None
    check: bool = False
    retries: int = 3
    backoff_s: float = 2.0
    operator: str = field(default_factory=operator_name)
    log_dir: Path | None = None
    work_dir: Path = Path(".fjmig/jobs")
    playbooks_dir: Path | None = None
    playbook_server: bool = True
    """Run jobs through a warm ansible-playbook (playbook_server.py); False: each job starts its own."""
    enforce_windows: bool = True
    """A cutover whose plan gives a window is held, not run, outside it. The lab is a rehearsal:
    the CLI turns this off for --lab (and for --ignore-windows)."""


@dataclass
class Event:
    """What the executor tells its caller (the CLI renders these)."""

    kind: str  # run-started | step-started | step-retry | step-finished | step-held | step-blocked | run-finished
    step_id: str | None = None
    state: str | None = None
    message: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunSummary:
    run_id: int
    status: str  # succeeded | failed | interrupted | held
    states: dict[str, str]
    messages: dict[str, str]
    selected: int

    def count(self, state: str) -> int:
        return sum(1 for s in self.states.values() if s == state)


def select_steps(graph: StepGraph, only: list[str], until: str | None) -> set[str]:
    """The steps a run is allowed to execute: `--only DEPT[/SYSTEM]` and `--until KIND`."""
    limit = KIND_RANK[until] if until else max(KIND_RANK.values())
    selected = set()
    for step_id, step in graph.steps.items():
        if step.kind == "milestone" or KIND_RANK[step.kind] > limit:
            continue
        if only and not any(_matches(step, pattern) for pattern in only):
            continue
        selected.add(step_id)
    return selected


def _matches(step: Step, pattern: str) -> bool:
    if "/" in pattern:
        return f"{step.dept}/{step.subject}" == pattern
    return step.dept == pattern


class Executor:
    def __init__(self, plans: PlanSet, inventory: Inventory, journal: Journal, options: RunOptions,
                 on_event: Callable[[Event], None] = lambda e: None) -> None:
        self.plans = plans
        self.inventory = inventory
        self.journal = journal
        self.options = options
        self.on_event = on_event
        self.graph = build_graph(plans)
        self.cancel = threading.Event()
        self.run_id: int | None = None
        self._order = {n: i for i, n in enumerate(nx.topological_sort(self.graph.graph))}
        self._presync_part: dict[str, dict[str, int]] = {}
        """A cutover that runs in one job with its presync: what its presync changed and moved."""

    def stop(self) -> None:
        """Ask the run to stop: no new jobs; running ones are cancelled and recorded interrupted."""
        self.cancel.set()

    def _emit(self, kind: str, step_id: str | None = None, **kw: Any) -> None:
        data = kw.pop("data", {})
        self.on_event(Event(kind, step_id, kw.pop("state", None), kw.pop("message", None), {**data, **kw}))

    def run(self) -> RunSummary:
        opts = self.options
        graph = self.graph.graph
        selected = select_steps(self.graph, opts.only, opts.until)
        run_id = self.run_id = self.journal.start_run(opts.operator, {
            "only": opts.only, "until": opts.until, "check": opts.check, "parallel": opts.parallel,
            "windows": "enforced" if opts.enforce_windows else "not enforced",
        })
        if self.journal.took_over:
            self.journal.note(run_id, "lock-takeover", {"previous": self.journal.took_over})
        stale = self.journal.interrupt_stale(run_id)
        reaped = reap_orphans(opts.work_dir)
        if reaped:
            self.journal.note(run_id, "reaped", {"process_groups": reaped})
        records = self.journal.step_records()
        approvals = self.journal.approvals()
        done = {s for s, r in records.items() if r.state == "succeeded"}
        if opts.check:
            done = set(done)  # check mode: successes are remembered in memory only
        states: dict[str, str] = {}
        messages: dict[str, str] = {}
        self._emit("run-started", data={"run_id": run_id, "selected": len(selected), "done": len(done & selected),
                                        "resumed": stale})

        todo = {s for s in selected if s not in done}
        failed: set[str] = set()
        control_dir = new_control_dir()
        opts.work_dir.mkdir(parents=True, exist_ok=True)
        (opts.work_dir / f"control-{run_id}").write_text(str(control_dir))
        config = RunnerConfig(
            inventory=self.inventory.path, playbooks_dir=opts.playbooks_dir or RunnerConfig.playbooks_dir,
            work_dir=opts.work_dir, log_dir=opts.log_dir, check=opts.check, control_dir=control_dir,
            job_tag=self.journal.identity(),
        )
        if stale:
            self._stop_leftovers(stale, config)

        def record(step_id: str, state: str, message: str | None = None, stats: dict[str, Any] | None = None) -> None:
            states[step_id] = state
            if message:
                messages[step_id] = message
            if opts.check:
                self.journal.note(run_id, "check-step", {"state": state, "message": message}, step_id)
            else:
                self.journal.record(run_id, step_id, state, message, stats)

        delivered = self.inventory.delivered_milestones()

        def milestone_ready(step_id: str) -> bool:
            """Ready in infra.yaml, or delivered by a stack whose outputs this run reads."""
            name = step_id.removeprefix("infra:")
            milestone = self.plans.milestones.get(name)
            return bool(milestone and (milestone.ready or name in delivered))

        def satisfied(pred: str) -> bool:
            if self.graph.steps[pred].kind == "milestone":
                return milestone_ready(pred)
            return pred in done

        running: dict[Future[JobResult], tuple[str, Job, int]] = {}
        # A job that runs a presync and its cutover -> (the cutover, set when the presync's copy succeeded)
        fused: dict[Future[JobResult], tuple[str, Future[dict[str, int]]]] = {}
        retry_at: dict[str, tuple[float, int]] = {}
        pool = ThreadPoolExecutor(max_workers=max(1, opts.parallel), thread_name_prefix="fjmig-job")
        server = contextlib.ExitStack()
        try:
            if opts.playbook_server and todo:
                config.playbook_server = server.enter_context(playbook_server(config)).wait_ready()
            while True:
                if not self.cancel.is_set():
                    self._start_ready(todo, failed, done, satisfied, approvals, record, running, fused,
                                      retry_at, pool, config)
                if not running and not retry_at:
                    break
                if not running:
                    # only retries are pending: sleep until the first is due (interruptible)
                    delay = max(0.0, min(t for t, _ in retry_at.values()) - time.monotonic())
                    if self.cancel.wait(delay):
                        for step_id in list(retry_at):
                            record(step_id, "interrupted", "stopped while waiting to retry")
                            todo.discard(step_id)
                        retry_at.clear()
                    continue
                timeout = None
                if retry_at:
                    timeout = max(0.05, min(t for t, _ in retry_at.values()) - time.monotonic())
                finished, _ = wait([*running, *(copied for _, copied in fused.values())], timeout=timeout,
                                   return_when=FIRST_COMPLETED)
                # A job's copy succeeds before the job ends, so a job in `finished` has its signal set here.
                for job_future, (cutover_id, copied) in list(fused.items()):
                    if copied.done():
                        del fused[job_future]
                        running[job_future] = self._presync_done(running[job_future], cutover_id, copied.result(),
                                                                 todo, done, record)
                for future in [f for f in finished if f in running]:
                    fused.pop(future, None)  # ended before its copy succeeded: the result is the presync's
                    step_id, job, attempt = running.pop(future)
                    result = future.result()
                    self._finish(step_id, job, attempt, result, todo, done, failed, record, retry_at)
        except KeyboardInterrupt:
            self.cancel.set()
            for future, (step_id, _, _) in list(running.items()):
                with contextlib.suppress(Exception):  # recorded interrupted below either way
                    future.result()
                record(step_id, "interrupted", "stopped by the operator")
            running.clear()
            raise
        finally:
            pool.shutdown(wait=True)
            server.close()
            close_control_masters(control_dir)
            shutil.rmtree(control_dir, ignore_errors=True)
            (opts.work_dir / f"control-{run_id}").unlink(missing_ok=True)

        for step_id in todo - set(states) - done:
            # Never started: held back by something outside this run's selection.
            waiting = [p for p in graph.predecessors(step_id) if not satisfied(p)]
            if waiting and step_id not in states:
                states[step_id] = "pending"
                messages[step_id] = "waits for " + ", ".join(sorted(waiting))
        if self.cancel.is_set():
            status = "interrupted"
        elif failed or any(s == "blocked" for s in states.values()):
            status = "failed"
        elif any(s in ("held", "pending") for s in states.values()):
            status = "held"
        else:
            status = "succeeded"
        self.journal.finish_run(run_id, status)
        self._emit("run-finished", state=status, data={"run_id": run_id})
        for step_id in selected & done:
            states.setdefault(step_id, "succeeded")
        return RunSummary(run_id, status, states, messages, len(selected))

    def _outside_window(self, step: Step) -> str | None:
        """Why a cutover may not start now (its change window), or None."""
        if step.kind != "cutover" or not self.options.enforce_windows:
            return None
        cutover = self.plans.systems[step.system_id][1].cutover
        bounds = cutover.bounds() if cutover else None
        if cutover is None or bounds is None:
            return None
        start, end = bounds
        current = datetime.now(UTC)
        if start <= current < end:
            return None
        edge = f"opens {start.isoformat()}" if current < start else f"closed {end.isoformat()}"
        return (f"outside its change window {cutover.window} ({edge}); run it inside the window, "
                "or pass --ignore-windows")

    def _stop_leftovers(self, stale: list[str], config: RunnerConfig) -> None:
        """Steps that were running when fjmig died may still have commands running on their hosts
        (SIGKILL gave no chance to stop them): stop those before the steps run again."""
        hosts: set[str] = set()
        tokens = []
        for step_id in stale:
            step = self.graph.steps.get(step_id)
            if step is None or step.kind == "milestone":
                continue
            with contextlib.suppress(JobError):
                hosts.update(build_job(step, self.plans, self.inventory).hosts)
                tokens.append(job_token(config.job_tag or "", step_id))
                if step.kind == "cutover":  # it may have run in one job with its presync, with its token
                    tokens.append(job_token(config.job_tag or "", f"{step.system_id}:presync"))
        if hosts and tokens:
            result = stop_remote(sorted(hosts), tokens, config)
            assert self.run_id is not None
            self.journal.note(self.run_id, "stopped-leftovers",
                              {"steps": sorted(stale), "status": result.status, "changed": result.changed})

    def _start_ready(self, todo: set[str], failed: set[str], done: set[str], satisfied: Callable[[str], bool],
                     approvals: dict[str, Any], record: Callable[..., None],
                     running: dict[Future[JobResult], tuple[str, Job, int]],
                     fused: dict[Future[JobResult], tuple[str, Future[dict[str, int]]]],
                     retry_at: dict[str, tuple[float, int]],
                     pool: ThreadPoolExecutor, config: RunnerConfig) -> None:
        graph = self.graph.graph
        in_flight = {s for s, _, _ in running.values()}
        now = time.monotonic()
        for step_id in sorted(todo, key=self._order.__getitem__):  # dependencies first: blocking propagates
            if step_id in in_flight:
                continue
            if step_id in retry_at:
                due, attempt = retry_at[step_id]
                if due > now:
                    continue
            else:
                attempt = 1
            preds = list(graph.predecessors(step_id))
            bad = [p for p in preds if p in failed]
            if bad:
                todo.discard(step_id)
                failed.add(step_id)  # propagate: its dependents are blocked too
                record(step_id, "blocked", "blocked by failed " + ", ".join(sorted(bad)))
                self._emit("step-blocked", step_id, state="blocked", message=f"blocked by {', '.join(sorted(bad))}")
                continue
            if not all(satisfied(p) for p in preds):
                continue
            if len(running) >= self.options.parallel:
                continue
            step = self.graph.steps[step_id]
            outside = self._outside_window(step)
            if outside:
                todo.discard(step_id)
                record(step_id, "held", outside)
                self._emit("step-held", step_id, state="held", message=outside)
                continue
            if step.approval and step_id not in approvals and not self.options.check:
                todo.discard(step_id)
                message = f"waits for approval: fjmig approve {step.system_id}"
                record(step_id, "held", message)
                self._emit("step-held", step_id, state="held", message=message)
                continue
            try:
                job = build_job(step, self.plans, self.inventory)
            except JobError as exc:
                todo.discard(step_id)
                failed.add(step_id)
                record(step_id, "failed", str(exc))
                self._emit("step-finished", step_id, state="failed", message=str(exc))
                continue
            partner = self._fusable(step, todo, satisfied, approvals) if step.kind == "presync" else None
            if partner:
                cutover_id, cutover_job = partner
                job = Job(step_id, cutover_job.playbook,
                          {**cutover_job.extravars, "fjmig_with_presync": True, "fjmig_presync_started": time.time()},
                          cutover_job.hosts, also=(cutover_id,))
            retry_at.pop(step_id, None)
            if not self.options.check:
                self.journal.record(self.run_id, step_id, "running",
                                    f"attempt {attempt}" if attempt > 1 else None)
            self._emit("step-started", step_id, data={"attempt": attempt, "hosts": list(job.hosts)})
            if partner:
                copied: Future[dict[str, int]] = Future()
                future = pool.submit(run_job, job, config, self.cancel,
                                     lambda part, s=copied: s.done() or s.set_result(part))
                fused[future] = (partner[0], copied)
            else:
                future = pool.submit(run_job, job, config, self.cancel)
            running[future] = (step_id, job, attempt)

    def _fusable(self, presync: Step, todo: set[str], satisfied: Callable[[str], bool],
                 approvals: dict[str, Any]) -> tuple[str, Job] | None:
        """The cutover that may run in one job with this presync: selected and not started, waiting
        for nothing else, approved if it must be. Not one with a change window that is enforced: the
        window is checked when a cutover starts, which in one job is after a copy of unknown length."""
        cutover_id = f"{presync.system_id}:cutover"
        cutover = self.graph.steps.get(cutover_id)
        if cutover is None or cutover_id not in todo:  # (it cannot be running: it waits for this presync)
            return None
        if any(p != presync.id and not satisfied(p) for p in self.graph.graph.predecessors(cutover_id)):
            return None
        if self.options.enforce_windows and cutover.window is not None:
            return None
        if cutover.approval and cutover_id not in approvals and not self.options.check:
            return None
        try:
            return cutover_id, build_job(cutover, self.plans, self.inventory)
        except JobError:
            return None  # the cutover fails with the reason when its turn comes

    def _presync_done(self, entry: tuple[str, Job, int], cutover_id: str, part: dict[str, int], todo: set[str],
                      done: set[str], record: Callable[..., None]) -> tuple[str, Job, int]:
        """The copy of a job that runs a presync and its cutover succeeded: journal the presync done
        and the cutover running; the job's result is the cutover's from now on."""
        presync_id, job, _ = entry
        todo.discard(presync_id)
        done.add(presync_id)
        stats = {**part, "with": cutover_id}
        record(presync_id, "succeeded", None, stats)
        self._emit("step-finished", presync_id, state="succeeded", data=stats)
        if not self.options.check:
            self.journal.record(self.run_id, cutover_id, "running", f"in one job with {presync_id}")
        self._emit("step-started", cutover_id, data={"attempt": 1, "hosts": list(job.hosts)})
        self._presync_part[cutover_id] = part
        return cutover_id, job, 1

    def _finish(self, step_id: str, job: Job, attempt: int, result: JobResult, todo: set[str], done: set[str],
                failed: set[str], record: Callable[..., None], retry_at: dict[str, tuple[float, int]]) -> None:
        presync = self._presync_part.pop(step_id, {})  # a job that ran the presync too: less its part
        stats = {"changed": result.changed - presync.get("changed", 0), "rc": result.rc,
                 "bytes": result.bytes_moved - presync.get("bytes", 0),
                 **{k: sum((result.stats.get(k) or {}).values()) for k in ("ok", "failures", "dark", "skipped")}}
        with contextlib.suppress(TypeError, ValueError):
            if "fjmig_downtime_s" in result.reported:  # cutover.yml: from the freeze to the switch
                stats["downtime_s"] = round(float(result.reported["fjmig_downtime_s"]), 3)
        if result.status == "successful":
            todo.discard(step_id)
            done.add(step_id)
            record(step_id, "succeeded", None, stats)
            self._emit("step-finished", step_id, state="succeeded", data=stats)
        elif result.status == "canceled":
            todo.discard(step_id)
            record(step_id, "interrupted", "stopped by the operator", stats)
            self._emit("step-finished", step_id, state="interrupted")
        elif result.status == "unreachable" and attempt <= self.options.retries and not self.cancel.is_set():
            delay = self.options.backoff_s * (2 ** (attempt - 1))
            retry_at[step_id] = (time.monotonic() + delay, attempt + 1)
            self._emit("step-retry", step_id, message=f"{result.message}; retry {attempt}/{self.options.retries} "
                       f"in {delay:.0f}s")
        else:
            todo.discard(step_id)
            failed.add(step_id)
            message = result.message or "failed"
            if result.status == "unreachable":
                message += f" (after {attempt} attempts)"
            record(step_id, "failed", message, stats)
            self._emit("step-finished", step_id, state="failed", message=message)


class RollbackError(FjmigError):
    """A rollback that must not run (verify passed, nothing to roll back)."""


def rollback_system(plans: PlanSet, inventory: Inventory, journal: Journal, gid: str,
                    work_dir: Path = Path(".fjmig/jobs"), operator: str | None = None) -> JobResult:
    """Return a system's service to its source. Refused once `verify` has passed: from then on
    the target is authoritative and may hold writes the source does not have."""
    records = journal.step_records()
    verify = records.get(f"{gid}:verify")
    if verify and verify.state == "succeeded":
        raise RollbackError(f"{gid}: verify has passed, so the target is authoritative; a rollback now could "
                            "lose writes made on the target")
    cutover = records.get(f"{gid}:cutover")
    presync = records.get(f"{gid}:presync")
    if not (cutover and cutover.state not in ("pending", "held")) and not presync:
        raise RollbackError(f"{gid}: nothing to roll back (its cutover never ran)")
    dept, subject = gid.split("/", 1)
    step = Step(id=f"{gid}:rollback", kind="rollback", dept=dept, subject=subject, deadline=None)  # type: ignore[arg-type]
    job = build_job(step, plans, inventory)
    run_id = journal.start_run(operator or operator_name(), {"rollback": gid})
    journal.record(run_id, step.id, "running")
    result = run_job(job, RunnerConfig(inventory=inventory.path, work_dir=work_dir), threading.Event())
    if result.status == "successful":
        journal.record(run_id, step.id, "succeeded", None, {"changed": result.changed})
        for kind in ("cutover", "verify"):
            record = records.get(f"{gid}:{kind}")
            if record and record.state not in ("pending", "held"):
                journal.record(run_id, f"{gid}:{kind}", "rolled-back", "service returned to the source")
        journal.finish_run(run_id, "succeeded")
    else:
        journal.record(run_id, step.id, "failed", result.message)
        journal.finish_run(run_id, "failed")
    return result
