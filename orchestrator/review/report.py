"""The policy's scorecard (`fjmig report`): what each department and city has done, against its deadline.

The policy asks for a ledger (台账), two inspections a year and a yearly evaluation; this builds
their numbers from the plans and, when there is one, the executor's journal. A step counts as
done only when the journal says `succeeded`; without a journal nothing is done and the verdicts
come from the schedule alone:

- `met`: everything done by the deadline (end of that day, +08:00);
- `late`: done after the deadline, or not done and the deadline has passed or the schedule's
  earliest finish falls after it;
- `at-risk`: not done, on schedule, but a step failed or is held/blocked/interrupted/rolled back,
  or there are fewer than AT_RISK_DAYS of slack;
- `on-track`: not done, and the schedule finishes it in time;
- `n/a`: nothing of that kind to do.

The census is the exception: its evidence is the plan itself (every census field filled in), so
it can be `met` without a journal. Excluded systems are listed with their reason and never
counted as gaps; zombies are counted only under "zombies eliminated".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from ..errors import FjmigError
from ..plans.loader import PlanSet
from ..plans.model import CENSUS_FIELDS, THEMES, DepartmentPlan, System
from ..plans.rules import Options, Validation, validate
from ..plans.schedule import CST, Schedule, schedule
from ..plans.steps import StepGraph, policy_deadline, step_id

AT_RISK_DAYS = 7
SHARE_TARGET = 0.60
SHARE_DEADLINE = date(2017, 12, 31)
THEMES_DEADLINE = date(2018, 6, 30)
CENSUS_DEADLINES = {"province": date(2017, 12, 31), "local": date(2018, 6, 30), "institution": date(2018, 12, 31)}
TROUBLE_STATES = frozenset({"failed", "held", "blocked", "interrupted", "rolled-back"})
VERDICT_ORDER = ("n/a", "met", "on-track", "at-risk", "late")

MILESTONES: tuple[tuple[str, str, str], ...] = (
    # key, Chinese label, English label
    ("census", "系统普查", "Census complete"),
    ("zombies", "僵尸系统清理", "Zombies eliminated"),
    ("moved", "系统迁移", "Systems moved"),
    ("shared", "接入共享平台", "Connected to the sharing platform"),
    ("networks", "专网撤并", "Private networks retired"),
    ("datacenter", "机房关停", "Data center closed"),
)
MILESTONE_STEP: dict[str, str] = {"zombies": "decommission", "moved": "verify", "shared": "share",
                                  "networks": "retire", "datacenter": "close"}
THEME_LABELS: dict[str, str] = {
    "credit": "信用", "public-resource-trading": "公共资源交易", "investment": "投资", "prices": "价格",
    "natural-person": "自然人", "legal-person": "法人", "energy": "能源", "spatial-geography": "空间地理",
    "transport": "交通", "tourism": "旅游",
}
CITY_LABELS: dict[str, str] = {
    "province": "省直", "fuzhou": "福州", "xiamen": "厦门", "putian": "莆田", "sanming": "三明",
    "quanzhou": "泉州", "zhangzhou": "漳州", "nanping": "南平", "longyan": "龙岩", "ningde": "宁德",
    "pingtan": "平潭",
}
EXCLUSION_REASONS: dict[str, str] = {
    "classified": "涉密 classified (POLICY rule 2)",
    "police-sensitive": "公安敏感 police-sensitive, on an approved retained network (POLICY rule 2)",
}


@dataclass
class Progress:
    """What the journal says: step id -> state, and the day (+08:00) a succeeded step finished."""

    source: str
    states: dict[str, str] = field(default_factory=dict)
    finished: dict[str, date] = field(default_factory=dict)

    def done(self, step: str) -> bool:
        return self.states.get(step) == "succeeded"


def progress_from_records(records: dict[str, Any], source: str) -> Progress:
    """From `Journal.step_records()` (anything with `.state` and `.finished_at`)."""
    progress = Progress(source)
    for sid, record in sorted(records.items()):
        progress.states[sid] = record.state
        if record.state == "succeeded" and record.finished_at is not None:
            finished: datetime = record.finished_at
            progress.finished[sid] = (finished.astimezone(CST) if finished.tzinfo else finished).date()
    return progress


def load_progress(path: str | Path) -> Progress:
    """Read a journal without writing to it."""
    from ..journal import Journal, JournalError

    if not Path(path).is_file():
        raise JournalError(f"{path}: no such journal")
    with Journal.open(path, readonly=True) as opened:
        records = opened.step_records()
    return progress_from_records(records, str(path))


@dataclass
class Score:
    """One milestone of one department (or a city, or the province): done of total, and the verdict."""

    total: int = 0
    done: int = 0
    deadline: str | None = None
    verdict: str = "n/a"
    planned_finish: str | None = None
    remaining: list[str] = field(default_factory=list)


@dataclass
class Unit:
    id: str
    name: str
    level: str
    city: str
    kind: str
    scores: dict[str, Score] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        return worst(s.verdict for s in self.scores.values())


@dataclass
class Excluded:
    system: str
    name: str | None
    classification: str
    reason: str


@dataclass
class Share:
    active: int
    planned: int
    done: int
    planned_by_deadline: int = 0
    """Systems whose `share` step the schedule finishes by the deadline."""
    verdict: str = "n/a"
    target: float = SHARE_TARGET
    deadline: str = SHARE_DEADLINE.isoformat()

    @property
    def planned_ratio(self) -> float:
        return self.planned / self.active if self.active else 0.0

    @property
    def done_ratio(self) -> float:
        return self.done / self.active if self.active else 0.0


@dataclass
class ThemeFeed:
    theme: str
    label: str
    systems: list[str]
    done: list[str]

    @property
    def status(self) -> str:
        return "fed" if self.done else ("planned" if self.systems else "gap")


@dataclass
class BurnDown:
    """Items of one milestone left over time: planned (schedule) and actual (journal)."""

    milestone: str
    total: int
    deadlines: list[str]
    planned: list[tuple[str, int]]
    actual: list[tuple[str, int]]


@dataclass
class GanttRow:
    department: str
    start: str
    finish: str
    deadline: str | None
    steps: int
    late: bool


@dataclass
class Report:
    plans: str
    journal: str | None
    start: str
    departments: list[Unit]
    cities: list[Unit]
    province: Unit
    excluded: list[Excluded]
    retained_networks: list[dict[str, str]]
    share: Share
    themes: list[ThemeFeed]
    burndown: list[BurnDown]
    gantt: list[GanttRow]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["share"].update(planned_ratio=round(self.share.planned_ratio, 4),
                             done_ratio=round(self.share.done_ratio, 4))
        for theme, feed in zip(data["themes"], self.themes, strict=True):
            theme["status"] = feed.status
        for key in ("departments", "cities"):
            for unit, obj in zip(data[key], getattr(self, key), strict=True):
                unit["verdict"] = obj.verdict
        data["province"]["verdict"] = self.province.verdict
        return data


def worst(verdicts: Iterable[str]) -> str:
    return max(verdicts, key=VERDICT_ORDER.index, default="n/a")


def _bucket(plan: DepartmentPlan) -> str:
    dept = plan.department
    return "institution" if dept.kind == "institution" else ("province" if dept.level == "province" else "local")


def census_complete(system: System) -> bool:
    return all(getattr(system, name) is not None for name in CENSUS_FIELDS)


def _finish(sched: Schedule, sid: str) -> date:
    return sched.finish_date(sid)


def step_score(steps: list[str], deadline: date | None, sched: Schedule, progress: Progress | None,
               as_of: date) -> Score:
    """Done of total for a list of step ids, and its verdict (see the module docstring)."""
    score = Score(total=len(steps), deadline=deadline.isoformat() if deadline else None)
    if not steps:
        return score
    done = [s for s in steps if progress and progress.done(s)]
    remaining = sorted(set(steps) - set(done))
    score.done, score.remaining = len(done), remaining
    if not remaining:
        finished = [progress.finished[s] for s in done if progress and s in progress.finished]
        late = deadline is not None and any(day > deadline for day in finished)
        score.verdict = "late" if late else "met"
        return score
    finish = max((_finish(sched, s) for s in remaining if s in sched.timings), default=None)
    if finish is None:  # not scheduled at all: nothing says it can be done in time
        score.verdict = "late" if deadline is not None and as_of > deadline else "at-risk"
        return score
    score.planned_finish = finish.isoformat()
    # A failed presync or cutover puts the system's `verify` at risk too: look at every step of a subject.
    subjects = {s.rsplit(":", 1)[0] for s in remaining}
    trouble = progress is not None and any(state in TROUBLE_STATES and sid.rsplit(":", 1)[0] in subjects
                                           for sid, state in progress.states.items())
    if deadline is not None and (as_of > deadline or finish > deadline):
        score.verdict = "late"
    elif trouble or (deadline is not None and (deadline - finish).days < AT_RISK_DAYS):
        score.verdict = "at-risk"
    else:
        score.verdict = "on-track"
    return score


def _department_steps(plan: DepartmentPlan) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {key: [] for key in MILESTONE_STEP}
    for system in plan.systems:
        if system.excluded:
            continue
        if system.status == "zombie":
            out["zombies"].append(step_id(plan.id, system.id, "decommission"))
            continue
        out["moved"].append(step_id(plan.id, system.id, "verify"))
        if system.share:
            out["shared"].append(step_id(plan.id, system.id, "share"))
    for network in plan.private_networks:
        if network.migrate_to != "retain":
            out["networks"].append(step_id(plan.id, network.id, "retire"))
    if plan.datacenter:
        out["datacenter"].append(step_id(plan.id, plan.datacenter.id, "close"))
    return out


def department_unit(plan: DepartmentPlan, sched: Schedule, progress: Progress | None, as_of: date) -> Unit:
    dept = plan.department
    unit = Unit(plan.id, dept.name, dept.level, dept.city or "province", dept.kind)
    complete = [s for s in plan.systems if census_complete(s)]
    census_deadline = CENSUS_DEADLINES[_bucket(plan)]
    census = Score(total=len(plan.systems), done=len(complete), deadline=census_deadline.isoformat(),
                   remaining=sorted(f"{plan.id}/{s.id}" for s in plan.systems if not census_complete(s)))
    if census.total:
        census.verdict = "met" if census.done == census.total else ("late" if as_of > census_deadline else "at-risk")
    unit.scores["census"] = census
    for key, steps in _department_steps(plan).items():
        deadline = policy_deadline(plan, MILESTONE_STEP[key])
        unit.scores[key] = step_score(steps, deadline, sched, progress, as_of)
    return unit


def aggregate(unit_id: str, name: str, members: list[Unit]) -> Unit:
    """A city (or the province) as the sum of its departments; the verdict is the worst one."""
    unit = Unit(unit_id, name, "", unit_id, "")
    for key, _, _ in MILESTONES:
        scores = [m.scores[key] for m in members if m.scores[key].total]
        deadlines = sorted({s.deadline for s in scores if s.deadline})
        finishes = [s.planned_finish for s in scores if s.planned_finish]
        unit.scores[key] = Score(
            total=sum(s.total for s in scores), done=sum(s.done for s in scores),
            deadline=deadlines[0] if len(deadlines) == 1 else (" / ".join(deadlines) or None),
            verdict=worst(s.verdict for s in scores),
            planned_finish=max(finishes) if finishes else None,
            remaining=sorted(r for s in scores for r in s.remaining),
        )
    return unit


def share_score(active: int, planned: int, done: int, in_time: int, as_of: date) -> Share:
    """The 60% target: met when done, late when the schedule cannot reach it by the deadline."""
    share = Share(active, planned, done, in_time)
    if not active:
        return share
    if done / active >= SHARE_TARGET:
        share.verdict = "met"
    elif as_of > SHARE_DEADLINE or in_time / active < SHARE_TARGET:
        share.verdict = "late"
    else:
        share.verdict = "on-track"
    return share


def burndown(key: str, steps: list[str], sched: Schedule, progress: Progress | None,
             deadlines: Iterable[str]) -> BurnDown:
    total = len(steps)
    planned: list[tuple[str, int]] = [(sched.origin.date().isoformat(), total)]
    left = total
    for day in sorted(_finish(sched, s) for s in steps if s in sched.timings):
        left -= 1
        planned.append((day.isoformat(), left))
    actual: list[tuple[str, int]] = []
    if progress is not None:
        actual = [(sched.origin.date().isoformat(), total)]
        left = total
        for day in sorted(progress.finished[s] for s in steps if progress.done(s) and s in progress.finished):
            left -= 1
            actual.append((day.isoformat(), left))
    return BurnDown(key, total, sorted(set(deadlines)), _last_per_day(planned), _last_per_day(actual))


def _last_per_day(points: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """The starting point, then what is left at the end of each day (a drop on day one stays visible)."""
    if not points:
        return []
    out: dict[str, int] = {}
    for day, left in points[1:]:
        out[day] = left
    return [points[0], *sorted(out.items())]


def gantt_rows(plans: PlanSet, sched: Schedule, progress: Progress | None) -> list[GanttRow]:
    rows = []
    for dept_id in sorted(plans.departments):
        remaining = [t for sid, t in sched.timings.items()
                     if t.step.dept == dept_id and not (progress and progress.done(sid))]
        if not remaining:
            continue
        start = min(t.start for t in remaining)
        finish = max(t.finish for t in remaining)
        deadlines = [t.step.deadline for t in remaining if t.step.deadline]
        late = any(sched.finish_date(t.step.id) > t.step.deadline for t in remaining if t.step.deadline)
        rows.append(GanttRow(dept_id, sched.at(start).isoformat(timespec="minutes"),
                             sched.at(finish).isoformat(timespec="minutes"),
                             min(deadlines).isoformat() if deadlines else None, len(remaining), late))
    return rows


def remaining_schedule(sched: Schedule, progress: Progress | None) -> Schedule:
    """The work not yet done, scheduled from the report's date: done steps no longer take time or
    slots, and what waited for them can start at once. Without progress, the plan's schedule."""
    if progress is None or not any(progress.done(s) for s in sched.timings):
        return sched
    graph = sched.graph
    keep = [n for n in graph.graph.nodes if not progress.done(n)]
    sub = StepGraph(graph=graph.graph.subgraph(keep).copy(), steps={n: graph.steps[n] for n in keep})
    return schedule(sub, sched.origin.date(), sched.model)


def build_report(plans: PlanSet, validation: Validation, progress: Progress | None) -> Report:
    """The scorecard. `validation.schedule` must exist (the plans form an acyclic graph)."""
    sched = validation.schedule
    if sched is None:
        raise ValueError("no schedule: the plans have a dependency cycle or no departments")
    as_of = sched.origin.date()
    ahead = remaining_schedule(sched, progress)
    departments = [department_unit(plans.departments[d], ahead, progress, as_of) for d in sorted(plans.departments)]
    by_city: dict[str, list[Unit]] = {}
    for unit in departments:
        by_city.setdefault(unit.city, []).append(unit)
    order = list(CITY_LABELS)
    cities = [aggregate(city, CITY_LABELS.get(city, city), by_city[city])
              for city in sorted(by_city, key=lambda c: (order.index(c) if c in order else len(order), c))]
    province = aggregate("all", "全省 All", departments)

    excluded, active, planned_share, done_share, in_time = [], 0, 0, 0, 0
    feeds: dict[str, tuple[list[str], list[str]]] = {theme: ([], []) for theme in THEMES}
    for gid, (plan, system) in sorted(plans.systems.items()):
        if system.excluded:
            excluded.append(Excluded(gid, system.name, system.classification,
                                     EXCLUSION_REASONS.get(system.classification, system.classification)))
            continue
        if not system.migrates:
            continue
        active += 1
        if not system.share:
            continue
        planned_share += 1
        share_step = step_id(plan.id, system.id, "share")
        shared = bool(progress and progress.done(share_step))
        done_share += shared
        in_time += shared or (share_step in sched.timings and sched.finish_date(share_step) <= SHARE_DEADLINE)
        for theme in system.themes:
            feeds[theme][0].append(gid)
            if shared:
                feeds[theme][1].append(gid)
    retained = [{"network": f"{plan.id}/{n.id}", "by": n.retain_approval.by if n.retain_approval else "",
                 "reason": n.retain_approval.reason if n.retain_approval else ""}
                for plan in sorted(plans.departments.values(), key=lambda p: p.id)
                for n in plan.private_networks if n.migrate_to == "retain"]

    all_steps: dict[str, list[str]] = {key: [] for key in MILESTONE_STEP}
    deadlines: dict[str, set[str]] = {key: set() for key in MILESTONE_STEP}
    for dept_id in sorted(plans.departments):
        plan = plans.departments[dept_id]
        for key, steps in _department_steps(plan).items():
            all_steps[key] += steps
            if steps:
                deadlines[key].add(policy_deadline(plan, MILESTONE_STEP[key]).isoformat())
    burn = [burndown(key, all_steps[key], sched, progress, deadlines[key]) for key in MILESTONE_STEP]

    return Report(
        plans=str(plans.root), journal=progress.source if progress else None, start=as_of.isoformat(),
        departments=departments, cities=cities, province=province, excluded=excluded,
        retained_networks=retained, share=share_score(active, planned_share, done_share, in_time, as_of),
        themes=[ThemeFeed(t, THEME_LABELS[t], *feeds[t]) for t in THEMES],
        burndown=burn, gantt=gantt_rows(plans, ahead, progress),
    )


class UnschedulablePlansError(FjmigError):
    """The plans cannot be scheduled, so there is no scorecard to give."""


def scorecard(plans: PlanSet, options: Options, journal: str | Path | None = None) -> tuple[Report, int]:
    """The report of PLANS (validated with OPTIONS) and, when given, a journal's progress; and the
    number of error findings the plans have (the report counts what loads)."""
    validation = validate(plans, options)
    if validation.schedule is None:
        raise UnschedulablePlansError("the plans cannot be scheduled (run 'fjmig validate'): "
                                      + "; ".join(f.format() for f in validation.errors[:3]))
    progress = load_progress(journal) if journal else None
    return build_report(plans, validation, progress), len(validation.errors)
