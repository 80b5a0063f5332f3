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
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import networkx as nx

from ..errors import FjmigError
from ..journal import Journal, operator_name
from ..plans.kinds import selected_by_until
from ..plans.loader import PlanSet
from ..plans.steps import Step, StepGraph, build_graph
from . import freezes
from .inventory import Inventory
from .jobs import Job, JobError, build_job
from .nodes import nodes_of
from .playbook_server import PlaybookServer
from .remote import NodeLinks
from .runner import (
    JobResult,
    RunnerConfig,
    armed_freezes,
    cancel_job,
    close_control_masters,
    job_token,
    new_control_dir,
    playbook_server,
    quiet_config,
    reap_orphans,
    run_job,
)
from .state import Running, RunState


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
    fallback: str | None = None
    """Why jobs did not run through the warm playbook server, when some did not (also journaled)."""
    lost_nodes: dict[str, str] = field(default_factory=dict)
    """Execution nodes lost during the run, with why (also journaled: `node-lost`)."""

    def count(self, state: str) -> int:
        return sum(1 for s in self.states.values() if s == state)


def select_steps(graph: StepGraph, only: list[str], until: str | None) -> set[str]:
    """The steps a run is allowed to execute: `--only DEPT[/SYSTEM]` and `--until KIND`."""
    selected = set()
    for step_id, step in graph.steps.items():
        if not selected_by_until(step.kind, until):
            continue
        if only and not any(_matches(step, pattern) for pattern in only):
            continue
        selected.add(step_id)
    return selected


def _matches(step: Step, pattern: str) -> bool:
    if "/" in pattern:
        return f"{step.dept}/{step.subject}" == pattern
    return step.dept == pattern


JobRunner = Callable[[Job, RunnerConfig, threading.Event, Callable[[dict[str, int]], None] | None], JobResult]
"""Runs one job and returns its result, never raising for a playbook failure (runner.run_job; tests
pass a fake). Its last argument, when given, is called once a fused job's presync copy succeeded."""


class Executor:
    def __init__(self, plans: PlanSet, inventory: Inventory, journal: Journal, options: RunOptions,
                 on_event: Callable[[Event], None] = lambda e: None, job_runner: JobRunner = run_job,
                 server_factory: Callable[[RunnerConfig], PlaybookServer] = playbook_server) -> None:
        self.plans = plans
        self.inventory = inventory
        self.journal = journal
        self.options = options
        self.on_event = on_event
        self.job_runner = job_runner
        self.server_factory = server_factory
        self.graph = build_graph(plans)
        self.cancel = threading.Event()
        self.run_id: int | None = None
        self.state = RunState(set(), set())
        self.server_stats: dict[str, int] | None = None
        """How many jobs the run's playbook server forked and how many fell back to exec."""
        self._order = {n: i for i, n in enumerate(nx.topological_sort(self.graph.graph))}
        self._approvals: dict[str, Any] = {}
        self._delivered = inventory.delivered_milestones()

    def stop(self) -> None:
        """Ask the run to stop: no new jobs; running ones are cancelled and recorded interrupted."""
        self.cancel.set()

    def _emit(self, kind: str, step_id: str | None = None, **kw: Any) -> None:
        data = kw.pop("data", {})
        self.on_event(Event(kind, step_id, kw.pop("state", None), kw.pop("message", None), {**data, **kw}))

    def _record(self, step_id: str, state: str, message: str | None = None,
                stats: dict[str, Any] | None = None, *, settles: bool = True) -> None:
        """The one path from a step's new state to the run's state and the journal. Check mode
        changes nothing: its outcomes are audit notes, and its successes are remembered in memory.
        `settles=False` journals what became known about a step this run has yet to run (a
        leftover's freeze) without settling it here."""
        if settles:
            self.state.settle(step_id, state, message)
        elif message:
            self.state.messages[step_id] = message
        if not self.options.check:
            self.journal.record(self.run_id, step_id, state, message, stats)
        elif state != "running":
            self.journal.note(self.run_id, "check-step", {"state": state, "message": message}, step_id)

    # -- the run ---------------------------------------------------------------------------------

    def run(self) -> RunSummary:
        opts = self.options
        selected = select_steps(self.graph, opts.only, opts.until)
        stale = self._begin(selected)
        control_dir = new_control_dir()
        opts.work_dir.mkdir(parents=True, exist_ok=True)
        control_record = opts.work_dir / f"control-{self.run_id}"
        control_record.write_text(str(control_dir))
        config = RunnerConfig(
            inventory=self.inventory.path, playbooks_dir=opts.playbooks_dir or RunnerConfig.playbooks_dir,
            work_dir=opts.work_dir, log_dir=opts.log_dir, check=opts.check, control_dir=control_dir,
            job_tag=self.journal.identity(),
        )
        config.nodes = self._node_links(config)
        if stale:
            self._stop_leftovers(stale, config)
        pool = ThreadPoolExecutor(max_workers=max(1, opts.parallel), thread_name_prefix="fjmig-job")
        try:
            with contextlib.ExitStack() as server:
                if config.nodes is not None and self.state.todo:
                    config.nodes.start(self._nodes_used(config))
                if opts.playbook_server and self.state.todo and config.nodes is None:  # (nodes run their own)
                    started = server.enter_context(self.server_factory(config))
                    config.playbook_server = started.wait_ready()
                    self._loop(pool, config)
                    self.server_stats = self._server_stats(started) if config.playbook_server else {"unavailable": 1}
                else:
                    self._loop(pool, config)
                    if config.nodes is not None and opts.playbook_server:  # each node's server, as the local one
                        self.server_stats = config.nodes.server_stats()
        except KeyboardInterrupt:
            self.cancel.set()
            for future, entry in list(self.state.running.items()):
                with contextlib.suppress(Exception):  # recorded interrupted below either way
                    future.result()
                self._record(entry.step_id, "interrupted", "stopped by the operator")
            self.state.running.clear()
            raise
        finally:
            pool.shutdown(wait=True)
            if config.nodes is not None:
                config.nodes.close()
            close_control_masters(control_dir)
            shutil.rmtree(control_dir, ignore_errors=True)
            control_record.unlink(missing_ok=True)
        return self._end(selected)

    def _node_links(self, config: RunnerConfig) -> NodeLinks | None:
        """The run's execution nodes (nodes.py), when the inventory declares any."""
        nodes = nodes_of(self.inventory)
        if not nodes:
            return None
        assert config.control_dir is not None and config.job_tag is not None
        return NodeLinks(nodes, config.control_dir, config.job_tag, warm=self.options.playbook_server,
                         playbooks_dir=config.playbooks_dir)

    def _nodes_used(self, config: RunnerConfig) -> set[str]:
        """The execution nodes this run's jobs will run on (to start them before the first job)."""
        assert config.nodes is not None
        used = set()
        for step_id in self.state.todo:
            step = self.graph.steps[step_id]
            if step.kind != "milestone":
                with contextlib.suppress(JobError):
                    node = config.nodes.route(build_job(step, self.plans, self.inventory).hosts)
                    if node is not None:
                        used.add(node.name)
        return used

    def _begin(self, selected: set[str]) -> list[str]:
        """Journal the run's start, take over what a dead run left; returns the steps it left running."""
        opts = self.options
        self.run_id = self.journal.start_run(opts.operator, {
            "only": opts.only, "until": opts.until, "check": opts.check, "parallel": opts.parallel,
            "windows": "enforced" if opts.enforce_windows else "not enforced",
        })
        if self.journal.took_over:
            self.journal.note(self.run_id, "lock-takeover", {"previous": self.journal.took_over})
        stale = self.journal.interrupt_stale(self.run_id)
        reaped = reap_orphans(opts.work_dir)
        if reaped:
            self.journal.note(self.run_id, "reaped", {"process_groups": reaped})
        done = {s for s, r in self.journal.step_records().items() if r.state == "succeeded"}
        self._approvals = self.journal.approvals()
        self.state = RunState(todo=selected - done, done=done)
        self._emit("run-started", data={"run_id": self.run_id, "selected": len(selected),
                                        "done": len(done & selected), "resumed": stale})
        return stale

    def _loop(self, pool: ThreadPoolExecutor, config: RunnerConfig) -> None:
        """Start what is ready, wait for a job (or a retry, or a fused job's copy), settle it; until
        nothing runs and nothing waits to be retried."""
        state = self.state
        while True:
            if not self.cancel.is_set():
                self._start_ready(pool, config)
            if not state.running and not state.retries:
                return
            if not state.running:  # only retries are pending: sleep until the first is due (interruptible)
                if self.cancel.wait(state.next_retry_in(time.monotonic())):
                    for step_id in list(state.retries):
                        self._record(step_id, "interrupted", "stopped while waiting to retry")
                continue
            delay = state.next_retry_in(time.monotonic())
            finished, _ = wait(state.waitables(), timeout=None if delay is None else max(0.05, delay),
                               return_when=FIRST_COMPLETED)
            # A job's copy succeeds before the job ends, so a job in `finished` has its signal set here.
            for future, entry in state.copied_fused_jobs():
                state.running[future] = self._presync_done(entry)
            for future in [f for f in finished if f in state.running]:
                entry = state.running.pop(future)  # a fused job that ended before its copy: the presync's result
                self._finish(entry, future.result())

    def _end(self, selected: set[str]) -> RunSummary:
        state = self.state
        for step_id in state.todo - set(state.states) - state.done:
            # Never started: held back by something outside this run's selection.
            waiting = [p for p in self.graph.graph.predecessors(step_id) if not self._satisfied(p)]
            if waiting:
                state.states[step_id] = "pending"
                state.messages[step_id] = "waits for " + ", ".join(sorted(waiting))
        status = state.status(self.cancel.is_set())
        fallback = self._server_fallback()
        if fallback:
            self.journal.note(self.run_id, "playbook-server-fallback",
                              {"message": fallback, **(self.server_stats or {})})
        assert self.run_id is not None
        self.journal.finish_run(self.run_id, status)
        self._emit("run-finished", state=status, data={"run_id": self.run_id})
        states = dict(state.states)
        for step_id in selected & state.done:
            states.setdefault(step_id, "succeeded")
        return RunSummary(self.run_id, status, states, dict(state.messages), len(selected), fallback,
                          dict(state.lost_nodes))

    @staticmethod
    def _server_stats(server: PlaybookServer) -> dict[str, int]:
        try:
            return server.stats()
        except (OSError, EOFError, ValueError):
            return {"stopped": 1}

    def _server_fallback(self) -> str | None:
        """Why jobs of this run did not run through the warm playbook server, if any did not."""
        stats = self.server_stats
        if not stats:
            return None
        if stats.get("unavailable"):
            return "the playbook server did not start: every job ran a fresh ansible-playbook (slower, same outcome)"
        if stats.get("stopped"):
            return ("the playbook server stopped during the run: later jobs ran a fresh ansible-playbook "
                    "(slower, same outcome)")
        if stats.get("fallback"):
            return (f"{stats['fallback']} of {stats['fallback'] + stats.get('forked', 0)} jobs ran a fresh "
                    "ansible-playbook instead of the warm playbook server (their ansible configuration "
                    "differed from the server's; slower, same outcome)")
        return None

    # -- deciding -----------------------------------------------------------------------------

    def _milestone_ready(self, step_id: str) -> bool:
        """Ready in infra.yaml, or delivered by a stack whose outputs this run reads."""
        name = step_id.removeprefix("infra:")
        milestone = self.plans.milestones.get(name)
        return bool(milestone and (milestone.ready or name in self._delivered))

    def _satisfied(self, pred: str) -> bool:
        if self.graph.steps[pred].kind == "milestone":
            return self._milestone_ready(pred)
        return pred in self.state.done

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

    def _why_not_now(self, step: Step) -> str | None:
        """Why a ready step is held instead of started: its window, or a missing approval."""
        outside = self._outside_window(step)
        if outside:
            return outside
        if step.approval and step.id not in self._approvals and not self.options.check:
            return f"waits for approval: fjmig approve {step.system_id}"
        return None

    def _start_ready(self, pool: ThreadPoolExecutor, config: RunnerConfig) -> None:
        state = self.state
        in_flight = state.in_flight()
        now = time.monotonic()
        for step_id in sorted(state.todo, key=self._order.__getitem__):  # dependencies first: blocking propagates
            if step_id in in_flight:
                continue
            attempt = state.attempt_due(step_id, now)
            if attempt is None:
                continue
            preds = list(self.graph.graph.predecessors(step_id))
            bad = sorted(p for p in preds if p in state.failed)
            if bad:
                self._record(step_id, "blocked", "blocked by failed " + ", ".join(bad))
                self._emit("step-blocked", step_id, state="blocked", message=f"blocked by {', '.join(bad)}")
                continue
            if not all(self._satisfied(p) for p in preds) or len(state.running) >= self.options.parallel:
                continue
            step = self.graph.steps[step_id]
            held = self._why_not_now(step)
            if held:
                self._record(step_id, "held", held)
                self._emit("step-held", step_id, state="held", message=held)
                continue
            try:
                job = build_job(step, self.plans, self.inventory)
            except JobError as exc:
                self._record(step_id, "failed", str(exc))
                self._emit("step-finished", step_id, state="failed", message=str(exc))
                continue
            self._start(pool, config, step, job, attempt)

    def _start(self, pool: ThreadPoolExecutor, config: RunnerConfig, step: Step, job: Job, attempt: int) -> None:
        """Journal the step running and submit its job (with its cutover, when they can run as one)."""
        partner = self._fusable(step) if step.kind == "presync" else None
        if partner:
            cutover_id, cutover_job = partner
            job = Job(step.id, cutover_job.playbook,
                      {**cutover_job.extravars, "fjmig_with_presync": True, "fjmig_presync_started": time.time()},
                      cutover_job.hosts, also=(cutover_id,))
        elif step.kind == "cutover" and self.options.enforce_windows and step.window is not None:
            # the dead-man's switch never keeps the service down past the change window's end
            job = replace(job, extravars={**job.extravars, "fjmig_freeze_not_after": step.window[1].timestamp()})
        self.state.retries.pop(step.id, None)
        node = config.nodes.route(job.hosts) if config.nodes is not None else None
        where = {"node": node.name} if node else None
        self._record(step.id, "running", f"attempt {attempt}" if attempt > 1 else None, where)
        self._emit("step-started", step.id, data={"attempt": attempt, "hosts": list(job.hosts), **(where or {})})
        entry = Running(step.id, job, attempt, node=node.name if node else None)
        if partner:
            copied: Future[dict[str, int]] = Future()
            entry.cutover_id, entry.copied = partner[0], copied
            future = pool.submit(self.job_runner, job, config, self.cancel,
                                 lambda part, s=copied: s.done() or s.set_result(part))
        else:
            future = pool.submit(self.job_runner, job, config, self.cancel, None)
        self.state.running[future] = entry

    def _fusable(self, presync: Step) -> tuple[str, Job] | None:
        """The cutover that may run in one job with this presync: selected and not started, waiting
        for nothing else, approved if it must be. Not one with a change window that is enforced: the
        window is checked when a cutover starts, which in one job is after a copy of unknown length."""
        cutover_id = f"{presync.system_id}:cutover"
        cutover = self.graph.steps.get(cutover_id)
        if cutover is None or cutover_id not in self.state.todo:  # (it cannot be running: it waits for this presync)
            return None
        if any(p != presync.id and not self._satisfied(p) for p in self.graph.graph.predecessors(cutover_id)):
            return None
        if self.options.enforce_windows and cutover.window is not None:
            return None
        if cutover.approval and cutover_id not in self._approvals and not self.options.check:
            return None
        try:
            return cutover_id, build_job(cutover, self.plans, self.inventory)
        except JobError:
            return None  # the cutover fails with the reason when its turn comes

    # -- settling -----------------------------------------------------------------------------

    def _presync_done(self, entry: Running) -> Running:
        """The copy of a job that runs a presync and its cutover succeeded: journal the presync done
        and the cutover running; the job's result is the cutover's from now on."""
        assert entry.cutover_id is not None and entry.copied is not None
        part = entry.copied.result()
        stats = {**part, "with": entry.cutover_id}
        self._record(entry.step_id, "succeeded", None, stats)
        self._emit("step-finished", entry.step_id, state="succeeded", data=stats)
        where = {"node": entry.node} if entry.node else None
        self._record(entry.cutover_id, "running", f"in one job with {entry.step_id}", where)
        self._emit("step-started", entry.cutover_id,
                   data={"attempt": 1, "hosts": list(entry.job.hosts), **(where or {})})
        self.state.presync_part[entry.cutover_id] = part
        return Running(entry.cutover_id, entry.job, 1, node=entry.node)

    def _finish(self, entry: Running, result: JobResult) -> None:
        step_id, attempt = entry.step_id, entry.attempt
        presync = self.state.presync_part.pop(step_id, {})  # a job that ran the presync too: less its part
        stats = {"changed": result.changed - presync.get("changed", 0), "rc": result.rc,
                 "bytes": result.bytes_moved - presync.get("bytes", 0),
                 **{k: sum((result.stats.get(k) or {}).values()) for k in ("ok", "failures", "dark", "skipped")}}
        with contextlib.suppress(TypeError, ValueError):
            if "fjmig_downtime_s" in result.reported:  # cutover.yml: from the freeze to the switch
                stats["downtime_s"] = round(float(result.reported["fjmig_downtime_s"]), 3)
        lost = result.reported.get("fjmig_freeze_lost")
        if result.status == "successful":
            self._record(step_id, "succeeded", None, stats)
            self._emit("step-finished", step_id, state="succeeded", data=stats)
        elif lost is not None or result.status == "canceled":
            # A freeze the source's watchdog aborted, or a job stopped by the operator: interrupted,
            # with what the source decided about a freeze the job had begun.
            settled = freezes.settle([lost] if lost else self._freeze_reports(entry.job, result))
            message = "stopped by the operator" if result.status == "canceled" else "the freeze was aborted"
            if settled:
                message = settled[0] if lost else f"{message}; {settled[0]}"
                stats.update(settled[1])
            self._record(step_id, "interrupted", message, stats)
            self._emit("step-finished", step_id, state="interrupted", message=message)
        elif result.status == "lost":
            self._node_lost(step_id, attempt, result, stats)
        elif result.status == "unreachable" and attempt <= self.options.retries and not self.cancel.is_set():
            delay = self.options.backoff_s * (2 ** (attempt - 1))
            self.state.retry_later(step_id, time.monotonic() + delay, attempt + 1)
            self._emit("step-retry", step_id, message=f"{result.message}; retry {attempt}/{self.options.retries} "
                       f"in {delay:.0f}s")
        else:
            message = result.message or "failed"
            if result.status == "unreachable":
                message += f" (after {attempt} attempts)"
            self._record(step_id, "failed", message, stats)
            self._emit("step-finished", step_id, state="failed", message=message)

    @staticmethod
    def _freeze_reports(job: Job, result: JobResult) -> list[dict[str, Any]]:
        """What the cutover's source reported about its freeze when the job was stopped (cancel.yml)."""
        key = job.extravars.get("service_key")
        return list((result.reported.get("fjmig_freezes") or {}).get(key) or []) if key else []

    def _node_lost(self, step_id: str, attempt: int, result: JobResult, stats: dict[str, Any]) -> None:
        """Its execution node died or dropped off the network: not the playbook's failure. The step is
        interrupted, the run notes the node, and the step is retried with the usual backoff (its
        worker is stopped on the node first, remote.py)."""
        message = result.message or f"execution node {result.node} lost"
        assert self.run_id is not None
        self.journal.note(self.run_id, "node-lost", {"node": result.node, "message": message}, step_id)
        self.state.lost_nodes[str(result.node)] = message
        if attempt <= self.options.retries and not self.cancel.is_set():
            self._record(step_id, "interrupted", message, stats)
            self.state.todo.add(step_id)  # (interrupted settles a step: this one is due again)
            delay = self.options.backoff_s * (2 ** (attempt - 1))
            self.state.retry_later(step_id, time.monotonic() + delay, attempt + 1)
            self._emit("step-retry", step_id, message=f"{message}; retry {attempt}/{self.options.retries} "
                       f"in {delay:.0f}s", data={"node": result.node})
        elif self.cancel.is_set():
            self._record(step_id, "interrupted", message, stats)
            self._emit("step-finished", step_id, state="interrupted", message=message)
        else:
            message += f" (after {attempt} attempts)"
            self._record(step_id, "failed", message, stats)
            self._emit("step-finished", step_id, state="failed", message=message)

    def _stop_leftovers(self, stale: list[str], config: RunnerConfig) -> None:
        """Steps that were running when fjmig died may still have commands running on their hosts
        (SIGKILL gave no chance to stop them): stop those before the steps run again. A cutover
        may have been in its freeze: its source settles it (the watchdog's decision, or the service
        started there again now) and the cutover's journal entry says what users saw."""
        hosts: set[str] = set()
        tokens = []
        frozen: dict[str, str] = {}  # cutover step -> its service key, on its source
        settle: list[dict[str, str]] = []
        for step_id in stale:
            step = self.graph.steps.get(step_id)
            if step is None or step.kind == "milestone":
                continue
            with contextlib.suppress(JobError):
                job = build_job(step, self.plans, self.inventory)
                hosts.update(job.hosts)
                tokens.append(job_token(config.job_tag or "", step_id))
                if step.kind == "cutover":  # it may have run in one job with its presync, with its token
                    tokens.append(job_token(config.job_tag or "", f"{step.system_id}:presync"))
                    settle += armed_freezes(job)
                    frozen[step_id] = str(job.extravars["service_key"])
        if not (hosts and tokens):
            return
        result = self.job_runner(cancel_job(sorted(hosts), tokens, settle), quiet_config(config), threading.Event(),
                                 None)
        assert self.run_id is not None
        self.journal.note(self.run_id, "stopped-leftovers",
                          {"steps": sorted(stale), "status": result.status, "changed": result.changed})
        reports = result.reported.get("fjmig_freezes") or {}
        for step_id, key in sorted(frozen.items()):
            settled = freezes.settle(list(reports.get(key) or []))
            if settled:
                self._record(step_id, "interrupted", settled[0], settled[1], settles=False)
                self._emit("step-settled", step_id, state="interrupted", message=settled[0])


@contextlib.contextmanager
def _rollback_nodes(config: RunnerConfig, inventory: Inventory, journal: Journal) -> Iterator[None]:
    """A rollback runs on its system's execution node too, when the inventory declares nodes."""
    nodes = nodes_of(inventory)
    if not nodes:
        yield
        return
    config.control_dir = new_control_dir()
    config.nodes = NodeLinks(nodes, config.control_dir, journal.identity(), warm=False,
                             playbooks_dir=config.playbooks_dir)
    try:
        yield
    finally:
        config.nodes.close()
        close_control_masters(config.control_dir)
        shutil.rmtree(config.control_dir, ignore_errors=True)


class RollbackError(FjmigError):
    """A rollback that must not run (verify passed, nothing to roll back)."""


def rollback_system(plans: PlanSet, inventory: Inventory, journal: Journal, gid: str,
                    work_dir: Path = Path(".fjmig/jobs"), operator: str | None = None,
                    job_runner: JobRunner = run_job) -> JobResult:
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
    step = Step(id=f"{gid}:rollback", kind="rollback", dept=dept, subject=subject, deadline=None)
    job = build_job(step, plans, inventory)
    run_id = journal.start_run(operator or operator_name(), {"rollback": gid})
    journal.record(run_id, step.id, "running")
    config = RunnerConfig(inventory=inventory.path, work_dir=work_dir)
    with _rollback_nodes(config, inventory, journal):
        result = job_runner(job, config, threading.Event(), None)
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
