"""What a change to the plans does: the comparison behind `fjmig diff` (a review for a pull request).

Both sides are loaded with the one loader and validated with the one validator; the diff then
compares models (field by field), dependency edges, the two schedules (waves, critical path,
slack to each deadline) and the findings. Findings are matched on file name, rule and message,
never on line numbers, so that lines that merely moved are not reported as new problems.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from ..plans.findings import Finding
from ..plans.loader import PlanSet, load_plans
from ..plans.rules import Options, Validation, validate
from ..plans.schedule import Schedule, origin_for

EntityKind = Literal["department", "system", "network", "milestone"]
ChangeKind = Literal["added", "removed", "changed"]
SLACK_EPSILON_S = 60.0
"""Makespan differences under a minute are rounding, not a change a reviewer should see."""
DEADLINE_EPSILON_S = 3600.0
"""Slack to a deadline that moves by less than an hour (and stays on the same side of it) is noise:
an added transfer delays unrelated steps by minutes when it takes a slot."""


@dataclass
class Side:
    """One side of the comparison: plans as loaded, their validation, and how to name them."""

    label: str
    plans: PlanSet
    validation: Validation
    display: str
    """How the plans directory is named in findings (e.g. `migration_plans`), whatever the temp dir."""


@dataclass(frozen=True)
class FieldChange:
    field: str
    before: Any
    after: Any


@dataclass
class EntityChange:
    kind: EntityKind
    id: str
    change: ChangeKind
    fields: list[FieldChange] = field(default_factory=list)
    note: str | None = None


@dataclass(frozen=True)
class WaveMove:
    step: str
    before: int
    after: int


@dataclass(frozen=True)
class DeadlineSlack:
    """The smallest slack of a department's steps against one deadline (days; None: no such steps)."""

    department: str
    deadline: str
    before_days: float | None
    after_days: float | None
    binding_step: str | None


@dataclass(frozen=True)
class FindingKey:
    file: str
    rule: str
    severity: str
    message: str
    line: int

    def format(self) -> str:
        return f"{self.file}:{self.line}: {self.severity}[{self.rule}]: {self.message}"


@dataclass
class CriticalPath:
    steps: list[str]
    finish: str | None
    makespan_days: float | None


@dataclass
class PlanDiff:
    base: str
    head: str
    entities: list[EntityChange] = field(default_factory=list)
    edges_added: list[tuple[str, str]] = field(default_factory=list)
    edges_removed: list[tuple[str, str]] = field(default_factory=list)
    waves_moved: list[WaveMove] = field(default_factory=list)
    steps_added: list[str] = field(default_factory=list)
    steps_removed: list[str] = field(default_factory=list)
    critical_before: CriticalPath | None = None
    critical_after: CriticalPath | None = None
    deadlines: list[DeadlineSlack] = field(default_factory=list)
    findings_new: list[FindingKey] = field(default_factory=list)
    findings_fixed: list[FindingKey] = field(default_factory=list)
    head_edges: list[tuple[str, str]] = field(default_factory=list)
    """Every dependency edge at head, for drawing the changed part of the graph in context."""

    @property
    def critical_delta_days(self) -> float | None:
        before = self.critical_before.makespan_days if self.critical_before else None
        after = self.critical_after.makespan_days if self.critical_after else None
        if before is None or after is None:
            return None
        return after - before

    @property
    def empty(self) -> bool:
        delta = self.critical_delta_days
        return not (self.entities or self.edges_added or self.edges_removed or self.waves_moved
                    or self.deadlines or self.findings_new or self.findings_fixed
                    or (delta is not None and abs(delta) * 86400 >= SLACK_EPSILON_S)
                    or (self.critical_before and self.critical_after
                        and self.critical_before.steps != self.critical_after.steps))

    def count(self, kind: EntityKind, change: ChangeKind) -> int:
        return sum(1 for e in self.entities if e.kind == kind and e.change == change)

    def new_findings(self, severity: str) -> list[FindingKey]:
        return [f for f in self.findings_new if f.severity == severity]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("head_edges")
        data["empty"] = self.empty
        data["critical_delta_days"] = self.critical_delta_days
        data["edges_added"] = [{"system": a, "depends_on": b} for a, b in self.edges_added]
        data["edges_removed"] = [{"system": a, "depends_on": b} for a, b in self.edges_removed]
        return data


def load_side(directory: Path, label: str, display: str, options: Options) -> Side:
    """Load and validate one side; the directory is loaded under its own path and renamed after."""
    plans = load_plans(directory)
    return Side(label=label, plans=plans, validation=validate(plans, options), display=display)


# --- models, field by field ------------------------------------------------------------------

def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts to dotted keys; lists and scalars stay values (compared as a whole)."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        if not value and prefix:
            out[prefix] = None
        return out
    return {prefix: value}


def _entities(plans: PlanSet) -> dict[tuple[EntityKind, str], dict[str, Any]]:
    out: dict[tuple[EntityKind, str], dict[str, Any]] = {}
    for dept_id, plan in plans.departments.items():
        data = plan.model_dump(mode="json", exclude={"systems", "private_networks"})
        out[("department", dept_id)] = _flatten(data)
        for system in plan.systems:
            out.setdefault(("system", f"{dept_id}/{system.id}"), _flatten(system.model_dump(mode="json")))
        for network in plan.private_networks:
            out.setdefault(("network", f"{dept_id}/{network.id}"), _flatten(network.model_dump(mode="json")))
    for milestone_id, milestone in plans.milestones.items():
        out[("milestone", f"infra:{milestone_id}")] = _flatten(milestone.model_dump(mode="json"))
    return out


_KIND_ORDER: dict[str, int] = {"department": 0, "system": 1, "network": 2, "milestone": 3}


def entity_changes(base: Side, head: Side) -> list[EntityChange]:
    before, after = _entities(base.plans), _entities(head.plans)
    unloadable = {Path(f.file).name.rsplit(".", 1)[0] for f in head.validation.findings if f.rule == "schema"}
    changes: list[EntityChange] = []
    for key in sorted(before.keys() | after.keys(), key=lambda k: (_KIND_ORDER[k[0]], k[1])):
        kind, entity_id = key
        old, new = before.get(key), after.get(key)
        if old is None:
            changes.append(EntityChange(kind, entity_id, "added",
                                        [FieldChange(k, None, v) for k, v in sorted(new.items())]))  # type: ignore[union-attr]
        elif new is None:
            dept = entity_id.split("/", 1)[0]
            note = f"{dept}.yaml does not load at head: see the new findings" if dept in unloadable else None
            changes.append(EntityChange(kind, entity_id, "removed", [], note))
        else:
            fields = [FieldChange(k, old.get(k), new.get(k)) for k in sorted(old.keys() | new.keys())
                      if old.get(k) != new.get(k)]
            if fields:
                changes.append(EntityChange(kind, entity_id, "changed", fields))
    return changes


# --- dependency edges ------------------------------------------------------------------------

def dependency_edges(plans: PlanSet) -> set[tuple[str, str]]:
    """(system, what it depends on) for every `depends_on` entry, milestones included."""
    return {(f"{plan.id}/{system.id}", dep)
            for plan in plans.departments.values() for system in plan.systems for dep in system.depends_on}


# --- schedules -------------------------------------------------------------------------------

def _critical(sched: Schedule | None) -> CriticalPath | None:
    if sched is None:
        return None
    return CriticalPath(list(sched.critical_path), sched.at(sched.makespan).isoformat(),
                        round(sched.makespan / 86400, 4))


def _steps(sched: Schedule | None) -> set[str]:
    return set(sched.timings) if sched else set()


def wave_moves(base: Schedule | None, head: Schedule | None) -> list[WaveMove]:
    if base is None or head is None:
        return []
    return [WaveMove(step, base.timings[step].wave, head.timings[step].wave)
            for step in sorted(base.timings.keys() & head.timings.keys())
            if base.timings[step].wave != head.timings[step].wave]


def deadline_slack(sched: Schedule | None) -> dict[tuple[str, str], tuple[float, str]]:
    """(department, deadline) -> (smallest slack in seconds to the end of that day, its step)."""
    out: dict[tuple[str, str], tuple[float, str]] = {}
    if sched is None:
        return out
    for step_id in sorted(sched.timings):
        timing = sched.timings[step_id]
        deadline = timing.step.deadline
        if timing.step.kind == "milestone" or deadline is None:
            continue
        end = (origin_for(deadline + timedelta(days=1)) - sched.origin).total_seconds()
        slack = end - timing.finish
        key = (timing.step.dept, deadline.isoformat())
        if key not in out or slack < out[key][0]:
            out[key] = (slack, step_id)
    return out


def deadline_changes(base: Schedule | None, head: Schedule | None) -> list[DeadlineSlack]:
    before, after = deadline_slack(base), deadline_slack(head)
    out = []
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key), after.get(key)
        if old and new and abs(old[0] - new[0]) < DEADLINE_EPSILON_S and (old[0] < 0) == (new[0] < 0):
            continue
        if (old is None or new is None) and (base is None or head is None):
            continue  # one side has no schedule at all: the findings say why
        out.append(DeadlineSlack(key[0], key[1],
                                 round(old[0] / 86400, 2) if old else None,
                                 round(new[0] / 86400, 2) if new else None,
                                 (new or old)[1] if (new or old) else None))  # type: ignore[index]
    return out


# --- findings --------------------------------------------------------------------------------

def _finding_key(side: Side, finding: Finding) -> FindingKey:
    root = str(side.plans.root)
    name = os.path.relpath(finding.file, root) if finding.file.startswith(root) else finding.file
    file = f"{side.display}/{name}" if name != "." else side.display
    return FindingKey(file, finding.rule, finding.severity, finding.message.replace(root, side.display),
                      finding.line or 1)


def finding_changes(base: Side, head: Side) -> tuple[list[FindingKey], list[FindingKey]]:
    """(introduced, fixed), matched ignoring line numbers (a multiset: twice the same is two)."""

    def keyed(side: Side) -> list[FindingKey]:
        return [_finding_key(side, f) for f in side.validation.findings]

    def match(key: FindingKey) -> tuple[str, str, str, str]:
        return (Path(key.file).name, key.rule, key.severity, key.message)

    old, new = keyed(base), keyed(head)
    remaining = Counter(match(k) for k in old)
    introduced = []
    for key in new:
        if remaining[match(key)] > 0:
            remaining[match(key)] -= 1
        else:
            introduced.append(key)
    remaining = Counter(match(k) for k in new)
    fixed = []
    for key in old:
        if remaining[match(key)] > 0:
            remaining[match(key)] -= 1
        else:
            fixed.append(key)
    order = _finding_order
    return sorted(introduced, key=order), sorted(fixed, key=order)


def _finding_order(key: FindingKey) -> tuple[int, str, int, str, str]:
    return (0 if key.severity == "error" else 1, key.file, key.line, key.rule, key.message)


def compare(base: Side, head: Side) -> PlanDiff:
    """Everything a reviewer needs to know about going from `base` to `head`."""
    edges_before, edges_after = dependency_edges(base.plans), dependency_edges(head.plans)
    new, fixed = finding_changes(base, head)
    base_steps, head_steps = _steps(base.validation.schedule), _steps(head.validation.schedule)
    return PlanDiff(
        base=base.label,
        head=head.label,
        entities=entity_changes(base, head),
        edges_added=sorted(edges_after - edges_before),
        edges_removed=sorted(edges_before - edges_after),
        waves_moved=wave_moves(base.validation.schedule, head.validation.schedule),
        steps_added=sorted(head_steps - base_steps),
        steps_removed=sorted(base_steps - head_steps),
        critical_before=_critical(base.validation.schedule),
        critical_after=_critical(head.validation.schedule),
        deadlines=deadline_changes(base.validation.schedule, head.validation.schedule),
        findings_new=new,
        findings_fixed=fixed,
        head_edges=sorted(edges_after),
    )


def fails(diff: PlanDiff, level: str | None) -> bool:
    """`--fail-on`: does the change introduce a finding at `level` or worse?"""
    if level is None:
        return False
    severities: Iterable[str] = ("error",) if level == "error" else ("error", "warning")
    return any(diff.new_findings(s) for s in severities)
