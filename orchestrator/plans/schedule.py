"""The schedule: when each step can run, given data sizes, bandwidth, transfer slots and windows.

The model (also in the README):
- presync moves `size_gb` at `bandwidth` Gbit/s;
- cutover moves `daily_change_gb` at `bandwidth` plus a fixed freeze/switch overhead;
- verify re-reads the data on both sides at `verify_speedup` × bandwidth, plus a fixed check;
- decommission archives `size_gb` at `bandwidth` plus a fixed shutdown;
- share, retire and close take fixed times.
At most `parallel` transfers (presync, cutover, decommission, share) run at once. A cutover with
a window starts inside it. The simulation runs in time order the way the executor would: a step
starts when its dependencies are done, its window is open and (for transfers) a slot is free;
windowed cutovers take free slots first, then the steps with the longest remaining chain.

Slack is total float against the schedule's end (a backward pass over the dependency graph,
bounded by cutover windows); the critical path is the chain of binding predecessors that ends
at the last step to finish. Waves are the graph's topological generations: every step of a wave
depends only on steps of earlier waves, so a migration lead can run them one after another.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

import networkx as nx

from .kinds import TRANSFER_KINDS
from .steps import Step, StepGraph

CST = timezone(timedelta(hours=8), "CST")
INF = float("inf")


@dataclass(frozen=True)
class DurationModel:
    bandwidth_gbit: float = 1.0
    parallel: int = 4
    cutover_overhead_s: float = 30 * 60
    verify_fixed_s: float = 5 * 60
    verify_speedup: float = 4.0
    share_s: float = 10 * 60
    decommission_fixed_s: float = 10 * 60
    retire_s: float = 15 * 60
    close_s: float = 60 * 60

    def duration(self, step: Step) -> float:
        """Seconds the step takes."""
        per_gb = 8.0 / self.bandwidth_gbit  # seconds to move one GB
        match step.kind:
            case "presync":
                return step.size_gb * per_gb
            case "cutover":
                return self.cutover_overhead_s + step.change_gb * per_gb
            case "verify":
                return self.verify_fixed_s + step.size_gb * per_gb / self.verify_speedup
            case "share":
                return self.share_s
            case "decommission":
                return self.decommission_fixed_s + step.size_gb * per_gb
            case "retire":
                return self.retire_s
            case "close":
                return self.close_s
        return 0.0


@dataclass
class Timing:
    step: Step
    wave: int
    duration: float
    start: float
    finish: float
    slack: float = 0.0
    window_problem: str | None = None
    critical: bool = False


@dataclass
class Schedule:
    origin: datetime
    model: DurationModel
    timings: dict[str, Timing]
    graph: StepGraph
    critical_path: list[str] = field(default_factory=list)
    makespan: float = 0.0
    waves: list[list[str]] = field(default_factory=list)

    def at(self, seconds: float) -> datetime:
        return self.origin + timedelta(seconds=seconds)

    def finish_date(self, step_id: str) -> date:
        return self.at(self.timings[step_id].finish).date()

    def deadline_end(self, deadline: date) -> float:
        """Seconds from the origin to the end of `deadline` (00:00 +08:00 the day after)."""
        if deadline >= date.max:
            return INF
        return (origin_for(deadline + timedelta(days=1)) - self.origin).total_seconds()

    def late_steps(self) -> frozenset[str]:
        """Ids of the steps whose earliest finish falls after their deadline, computed once: the
        same test as `finish_date(step) > deadline`, without building a datetime per step."""
        cached = self.__dict__.get("_late")
        if cached is not None:
            return cached
        ends: dict[date, float] = {}
        late = set()
        for sid, timing in self.timings.items():
            deadline = timing.step.deadline
            if deadline is None or timing.step.kind == "milestone":
                continue
            end = ends.get(deadline)
            if end is None:
                end = ends[deadline] = self.deadline_end(deadline)
            finish = timing.finish
            if finish >= end + 1 or (finish > end - 1 and self.finish_date(sid) > deadline):
                late.add(sid)
        self.__dict__["_late"] = result = frozenset(late)
        return result

    def is_late(self, timing: Timing) -> bool:
        """The step finishes after its policy deadline (milestones never are)."""
        return timing.step.id in self.late_steps()

    def deadline_misses(self) -> list[Timing]:
        """Steps whose earliest finish falls after their policy deadline (end of that day)."""
        late = self.late_steps()
        return [timing for sid, timing in self.timings.items() if sid in late]


def origin_for(start: date) -> datetime:
    """The schedule starts at 00:00 China Standard Time on `start`."""
    return datetime.combine(start, time(0, 0), tzinfo=CST)


def schedule(steps: StepGraph, start: date, model: DurationModel | None = None) -> Schedule:
    """Resource- and window-constrained earliest schedule. The graph must be acyclic.

    Works on plain adjacency lists and float seconds (no per-step datetime work): province-scale
    plan sets have tens of thousands of steps."""
    model = model or DurationModel()
    graph = steps.graph
    step_of = steps.steps
    origin = origin_for(start)
    succ: dict[str, list[str]] = {n: list(nbrs) for n, nbrs in graph.succ.items()}
    pred: dict[str, list[str]] = {n: list(nbrs) for n, nbrs in graph.pred.items()}
    order = list(nx.topological_sort(graph))
    duration = {n: model.duration(step_of[n]) for n in order}

    # Critical-path priority: the longest chain of work from each step to the end.
    tail: dict[str, float] = {}
    for node in reversed(order):
        after = succ[node]
        tail[node] = duration[node] + (max([tail[s] for s in after]) if after else 0.0)

    def window_bounds(step: Step) -> tuple[float, float] | None:
        if step.window is None:
            return None
        return ((step.window[0] - origin).total_seconds(), (step.window[1] - origin).total_seconds())

    def earliest(step: Step) -> float:
        if step.kind == "milestone":
            if step.ready_on is None:
                return 0.0
            if step.ready_on == date.min:
                return 0.0
            return max(0.0, (origin_for(step.ready_on) - origin).total_seconds())
        if step.window is None:
            return 0.0
        bounds = window_bounds(step)
        return max(0.0, bounds[0]) if bounds else 0.0

    waiting = {n: len(pred[n]) for n in order}
    ready_at: dict[str, float] = dict.fromkeys(order, 0.0)
    release: list[tuple[float, int, str]] = []
    queue: list[tuple[int, float, int, str]] = []
    running: list[tuple[float, int, str]] = []
    timings: dict[str, Timing] = {}
    is_transfer = {n: step_of[n].kind in TRANSFER_KINDS for n in order}
    seq = 0
    free_slots = max(1, model.parallel)
    heappush, heappop = heapq.heappush, heapq.heappop

    def push_release(node: str) -> None:
        nonlocal seq
        seq += 1
        heappush(release, (max(ready_at[node], earliest(step_of[node])), seq, node))

    def begin(node: str, now: float) -> None:
        nonlocal seq
        took = duration[node]
        timings[node] = Timing(step_of[node], 0, took, now, now + took)
        seq += 1
        heappush(running, (now + took, seq, node))

    for node in order:
        if waiting[node] == 0:
            push_release(node)
    now = 0.0
    while release or queue or running:
        while running and running[0][0] <= now:
            _, _, done = heappop(running)
            if is_transfer[done]:
                free_slots += 1
            finished = timings[done].finish
            for nxt in succ[done]:
                if ready_at[nxt] < finished:
                    ready_at[nxt] = finished
                waiting[nxt] -= 1
                if waiting[nxt] == 0:
                    push_release(nxt)
        while release and release[0][0] <= now:
            _, _, node = heappop(release)
            if is_transfer[node]:
                seq += 1
                heappush(queue, (0 if step_of[node].window else 1, -tail[node], seq, node))
            else:
                begin(node, now)
        while queue and free_slots > 0:
            _, _, _, node = heappop(queue)
            free_slots -= 1
            begin(node, now)
        # Both heads lie in the future here: whatever was due at `now` has been handled.
        now = min(release[0][0] if release else INF, running[0][0] if running else INF)
        if now == INF:
            break

    makespan = max((t.finish for t in timings.values()), default=0.0)

    # Window checks and backward pass (latest finish bounded by windows).
    latest_start: dict[str, float] = {}
    for node in reversed(order):
        timing = timings[node]
        after = succ[node]
        lf = min([latest_start[s] for s in after]) if after else makespan
        if timing.step.window is not None:
            bounds = window_bounds(timing.step)
            assert bounds is not None
            lf = min(lf, bounds[1])
            if timing.start > bounds[1] or timing.start < bounds[0]:
                timing.window_problem = "cannot start inside its window"
            elif timing.finish > bounds[1]:
                timing.window_problem = "does not fit its window"
        latest_start[node] = lf - duration[node]
        timing.slack = lf - timing.finish

    # Waves: topological generations (a step's wave is one more than its latest predecessor's).
    wave_of: dict[str, int] = {}
    for node in order:
        before = pred[node]
        wave = 1 + max([wave_of[p] for p in before]) if before else 1
        wave_of[node] = wave
        timings[node].wave = wave
    waves: list[list[str]] = [[] for _ in range(max(wave_of.values(), default=0))]
    for node, wave in wave_of.items():
        waves[wave - 1].append(node)
    for generation in waves:
        generation.sort()

    critical: list[str] = []
    if timings:
        node = max(timings, key=lambda n: (timings[n].finish, n))
        while node is not None:
            critical.append(node)
            timings[node].critical = True
            start = timings[node].start
            binding = [p for p in pred[node] if abs(timings[p].finish - start) < 1e-6]
            node = max(binding, key=lambda p: (timings[p].duration, p)) if binding else None
        critical.reverse()
    return Schedule(origin, model, timings, steps, critical, makespan, waves)
