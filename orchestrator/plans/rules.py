"""The rules of docs/PLAN_FORMAT.md that `fjmig validate` enforces, one function per rule.

Every rule takes the loaded plan set and returns findings located by YAML path; the loader
turns paths into line numbers only for what is reported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date

import networkx as nx

from .findings import Finding
from .loader import PlanSet
from .model import CENSUS_FIELDS, CITIES
from .schedule import DurationModel, Schedule, origin_for, schedule
from .steps import build_graph, system_dependency_graph

RULES: dict[str, str] = {
    "schema": "a missing required field, a wrong type or value, an id that breaks the pattern, "
    "version other than 1, a file name that differs from department.id, YAML that does not parse",
    "duplicate-id": "two departments, systems of one department, networks of one department or "
    "hosts anywhere with one id",
    "unknown-reference": "a depends_on, parent, host, city or network systems entry that names nothing",
    "cycle": "a dependency cycle",
    "classified-excluded": "a classified or police-sensitive system that another system depends on, "
    "or that sits on a private network that is not retained",
    "target-policy": "anything but a self-funded institution on social-enterprise-cloud; a city or "
    "county department on provincial-cloud; a province-level one on municipal-dc",
    "retain-approval": "a retained private network without retain_approval",
    "zombie-dependency": "an active system that depends on a zombie",
    "census-incomplete": "a system missing a census field or with an empty one",
    "deadline": "a step whose earliest finish falls after its policy deadline (error with --strict)",
    "window": "a cutover that cannot start inside, or fit, its cutover window (warning)",
}


@dataclass(frozen=True)
class Options:
    start: date
    model: DurationModel = field(default_factory=DurationModel)
    strict: bool = False


@dataclass
class Validation:
    findings: list[Finding]
    schedule: Schedule | None

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "warning"]


Rule = Callable[[PlanSet], Iterator[Finding]]


def _f(plans: PlanSet, dept: str, rule: str, message: str, *path: str | int,
       severity: str = "error") -> Finding:
    return Finding(plans.file_of(dept), rule, message, severity, tuple(path))  # type: ignore[arg-type]


def duplicate_ids(plans: PlanSet) -> Iterator[Finding]:
    if plans.infra is not None and plans.infra_file is not None:
        seen_milestones: set[str] = set()
        for index, milestone in enumerate(plans.infra.milestones):
            if milestone.id in seen_milestones:
                yield Finding(plans.infra_file.display, "duplicate-id",
                              f"milestone id {milestone.id!r} is used twice in infra.yaml",
                              path=("milestones", index, "id"))
            seen_milestones.add(milestone.id)
    host_owner: dict[str, str] = {}
    for plan in plans.departments.values():
        for what, items in (("system", plan.systems), ("private network", plan.private_networks)):
            seen: set[str] = set()
            for index, item in enumerate(items):
                if item.id in seen:
                    key = "systems" if what == "system" else "private_networks"
                    yield _f(plans, plan.id, "duplicate-id",
                             f"{what} id {item.id!r} is used twice in {plan.id}", key, index, "id")
                seen.add(item.id)
        if plan.datacenter:
            for index, host in enumerate(plan.datacenter.hosts):
                owner = host_owner.setdefault(host, plan.id)
                if owner != plan.id:
                    yield _f(plans, plan.id, "duplicate-id",
                             f"host {host!r} is also a host of {owner}: inventory names are global",
                             "datacenter", "hosts", index)
                elif plan.datacenter.hosts.index(host) != index:
                    yield _f(plans, plan.id, "duplicate-id", f"host {host!r} is listed twice",
                             "datacenter", "hosts", index)


def unknown_references(plans: PlanSet) -> Iterator[Finding]:
    for plan in plans.departments.values():
        dept = plan.department
        if dept.parent is not None and dept.parent not in plans.departments:
            yield _f(plans, plan.id, "unknown-reference",
                     f"parent {dept.parent!r} is not a department in this plans directory",
                     "department", "parent")
        if dept.level == "province":
            if dept.city is not None:
                yield _f(plans, plan.id, "unknown-reference",
                         "a province-level department has no city: set city: null", "department", "city")
        elif dept.city not in CITIES:
            yield _f(plans, plan.id, "unknown-reference",
                     f"city {dept.city!r} is not one of {', '.join(CITIES)} (a {dept.level} "
                     "department must name its city)", "department", "city")
        hosts = set(plan.datacenter.hosts) if plan.datacenter else set()
        names = {s.id for s in plan.systems}
        for index, system in enumerate(plan.systems):
            if system.host not in hosts:
                where = (f"datacenter.hosts ({', '.join(sorted(hosts))})" if hosts
                         else "a datacenter (the plan has none)")
                yield _f(plans, plan.id, "unknown-reference",
                         f"system {system.id!r}: host {system.host!r} is not in {where}",
                         "systems", index, "host")
            for dep_index, dep in enumerate(system.depends_on):
                if dep.startswith("infra:"):
                    if dep.removeprefix("infra:") not in plans.milestones:
                        known = ", ".join(sorted(plans.milestones)) or "none: there is no valid infra.yaml"
                        yield _f(plans, plan.id, "unknown-reference",
                                 f"system {system.id!r} depends on {dep!r}, which is not a milestone "
                                 f"in infra.yaml (known: {known})", "systems", index, "depends_on", dep_index)
                elif dep not in plans.systems:
                    hint = ""
                    if "/" not in dep:
                        hint = f"; dependencies use global ids, e.g. {plan.id}/{dep}" if dep in names else \
                            "; dependencies use global ids <department>/<system> or infra:<milestone>"
                    yield _f(plans, plan.id, "unknown-reference",
                             f"system {system.id!r} depends on {dep!r}, which names no system{hint}",
                             "systems", index, "depends_on", dep_index)
        for index, network in enumerate(plan.private_networks):
            for sys_index, name in enumerate(network.systems):
                if name not in names:
                    yield _f(plans, plan.id, "unknown-reference",
                             f"private network {network.id!r} lists {name!r}, which is not a system of {plan.id}",
                             "private_networks", index, "systems", sys_index)


def cycles(plans: PlanSet) -> Iterator[Finding]:
    yield from _parent_cycles(plans)
    graph = system_dependency_graph(plans)
    for component in nx.strongly_connected_components(graph):
        if len(component) == 1:
            (node,) = component
            if not graph.has_edge(node, node):
                continue
        first = min(component)
        cycle = [edge[0] for edge in nx.find_cycle(graph.subgraph(component), source=first)]
        chain = " -> ".join([*cycle, cycle[0]])
        dept, system = first.split("/", 1)
        plan, _ = plans.systems[first]
        index = next(i for i, s in enumerate(plan.systems) if s.id == system)
        yield _f(plans, dept, "cycle", f"dependency cycle: {chain}", "systems", index, "depends_on")


def _parent_cycles(plans: PlanSet) -> Iterator[Finding]:
    """A department that is (through its parents) its own parent: reported once per cycle."""
    reported: set[str] = set()
    for start in sorted(plans.departments):
        chain: list[str] = []
        current: str | None = start
        while current is not None and current in plans.departments and current not in chain:
            chain.append(current)
            current = plans.departments[current].department.parent
        if current is None or current not in chain:
            continue
        loop = chain[chain.index(current):]
        if reported & set(loop):
            continue
        reported.update(loop)
        first = min(loop)
        turn = loop.index(first)
        ordered = loop[turn:] + loop[:turn]
        yield _f(plans, first, "cycle", f"parent cycle: {' -> '.join([*ordered, first])}: a department "
                 "cannot own itself; fix department.parent", "department", "parent")


def classified_excluded(plans: PlanSet) -> Iterator[Finding]:
    for plan in plans.departments.values():
        for index, system in enumerate(plan.systems):
            for dep_index, dep in enumerate(system.depends_on):
                target = plans.systems.get(dep)
                if target and target[1].excluded:
                    yield _f(plans, plan.id, "classified-excluded",
                             f"system {system.id!r} depends on {dep!r}, which is {target[1].classification} "
                             "and excluded from integration: remove the dependency",
                             "systems", index, "depends_on", dep_index)
        excluded = {s.id: s for s in plan.systems if s.excluded}
        for index, network in enumerate(plan.private_networks):
            if network.migrate_to == "retain":
                continue
            for sys_index, name in enumerate(network.systems):
                if name in excluded:
                    yield _f(plans, plan.id, "classified-excluded",
                             f"{excluded[name].classification} system {name!r} sits on private network "
                             f"{network.id!r}, which migrates to the {network.migrate_to}: a network that "
                             "carries it must be retained (migrate_to: retain, with retain_approval)",
                             "private_networks", index, "systems", sys_index)


def target_policy(plans: PlanSet) -> Iterator[Finding]:
    for plan in plans.departments.values():
        dept = plan.department
        self_funded = dept.kind == "institution" and dept.funding == "self"
        if plan.target == "social-enterprise-cloud" and not self_funded:
            yield _f(plans, plan.id, "target-policy",
                     "only self-funded institutions may use the social-enterprise-cloud; "
                     "move to provincial-cloud or municipal-dc", "target")
        elif plan.target == "provincial-cloud" and dept.level != "province":
            yield _f(plans, plan.id, "target-policy",
                     f"a {dept.level} department moves to its city's data center: target: municipal-dc",
                     "target")
        elif plan.target == "municipal-dc" and dept.level == "province":
            yield _f(plans, plan.id, "target-policy",
                     "a province-level department moves to the provincial cloud: target: provincial-cloud",
                     "target")
        parent = plans.departments.get(dept.parent or "")
        if parent and not self_funded and plan.target != parent.target:
            yield _f(plans, plan.id, "target-policy",
                     f"a subordinate institution moves with its department: {parent.id} targets "
                     f"{parent.target}, this plan {plan.target}", "target")


def retain_approval(plans: PlanSet) -> Iterator[Finding]:
    for plan in plans.departments.values():
        for index, network in enumerate(plan.private_networks):
            if network.migrate_to == "retain" and network.retain_approval is None:
                yield _f(plans, plan.id, "retain-approval",
                         f"private network {network.id!r} is retained without retain_approval: "
                         "add {by, date, reason} of the approval, or migrate it", "private_networks", index)


def zombie_dependency(plans: PlanSet) -> Iterator[Finding]:
    for plan in plans.departments.values():
        for index, system in enumerate(plan.systems):
            if system.status != "active":
                continue
            for dep_index, dep in enumerate(system.depends_on):
                target = plans.systems.get(dep)
                if target and target[1].status == "zombie":
                    yield _f(plans, plan.id, "zombie-dependency",
                             f"active system {system.id!r} depends on zombie {dep!r}, which will be "
                             "eliminated: remove the dependency or revive the system",
                             "systems", index, "depends_on", dep_index)


def census_incomplete(plans: PlanSet) -> Iterator[Finding]:
    for plan in plans.departments.values():
        for index, system in enumerate(plan.systems):
            missing = [name for name in CENSUS_FIELDS if getattr(system, name) is None]
            if missing:
                yield _f(plans, plan.id, "census-incomplete",
                         f"system {system.id!r}: census field{'s' if len(missing) > 1 else ''} "
                         f"{', '.join(missing)} missing or empty", "systems", index, missing[0])


STRUCTURAL_RULES: tuple[Rule, ...] = (
    duplicate_ids,
    unknown_references,
    cycles,
    classified_excluded,
    target_policy,
    retain_approval,
    zombie_dependency,
    census_incomplete,
)


def structural_findings(plans: PlanSet) -> list[Finding]:
    """What loading found and every structural rule: whether the plans describe something that can
    be built and moved (valid.load_valid), before any question of when."""
    findings = list(plans.findings)
    for rule in STRUCTURAL_RULES:
        findings.extend(rule(plans))
    return findings


def schedule_findings(plans: PlanSet, sched: Schedule, strict: bool) -> Iterator[Finding]:
    """`deadline` and `window`: what only the schedule can tell."""
    late_by_subject: dict[tuple[str, str, str], list[object]] = {}
    for timing in sched.deadline_misses():
        step = timing.step
        subject_kind = "system" if step.kind not in ("retire", "close") else step.kind
        late_by_subject.setdefault((step.dept, step.subject, subject_kind), []).append(timing)
    for (dept, subject, _), timings in late_by_subject.items():
        first = min(timings, key=lambda t: t.finish)  # type: ignore[attr-defined]
        step = first.step  # type: ignore[attr-defined]
        more = f" (and {len(timings) - 1} later step{'s' * (len(timings) > 2)})" if len(timings) > 1 else ""
        yield _step_finding(plans, dept, subject, step.kind, "deadline",
                            f"{step.id} finishes {sched.finish_date(step.id).isoformat()} at the earliest, "
                            f"after its deadline {step.deadline.isoformat()}{more}",
                            "error" if strict else "warning")
    for timing in sched.timings.values():
        step = timing.step
        if step.kind == "milestone" and step.ready_on is None and plans.infra_file is not None:
            milestones = plans.infra.milestones if plans.infra else []
            index = next((i for i, m in enumerate(milestones) if m.id == step.subject), 0)
            waiting = ", ".join(sorted(sched.graph.graph.successors(step.id)))
            yield Finding(plans.infra_file.display, "deadline",
                          f"{step.id} is not ready and has no due date, so the schedule cannot tell when "
                          f"{waiting} can start (it assumes now): give it a due date",
                          "error" if strict else "warning", ("milestones", index))
        if timing.window_problem:
            start = sched.at(timing.start).strftime("%Y-%m-%d %H:%M")
            hours = timing.duration / 3600
            yield _step_finding(plans, step.dept, step.subject, step.kind, "window",
                                f"{step.id} {timing.window_problem} (earliest start {start} +08:00, "
                                f"takes {hours:.1f} h)", "warning")


def _step_finding(plans: PlanSet, dept: str, subject: str, kind: str, rule: str, message: str,
                  severity: str) -> Finding:
    plan = plans.departments[dept]
    if kind in ("retire",):
        index = next(i for i, n in enumerate(plan.private_networks) if n.id == subject)
        path: tuple[str | int, ...] = ("private_networks", index)
    elif kind == "close":
        path = ("datacenter",)
    else:
        index = next(i for i, s in enumerate(plan.systems) if s.id == subject)
        path = ("systems", index, "cutover", "window") if rule == "window" else ("systems", index)
    return Finding(plans.file_of(dept), rule, message, severity, path)  # type: ignore[arg-type]


LAST_DAY = date(9999, 12, 30)


def _beyond_calendar(plans: PlanSet, sched: Schedule) -> Finding | None:
    """A schedule that ends after the calendar does (absurd sizes, windows or bandwidth) cannot be
    shown in dates: one `deadline` error at the first step that runs past it, and no schedule."""
    horizon = (origin_for(LAST_DAY) - sched.origin).total_seconds()
    if sched.makespan <= horizon:
        return None
    timing = min((t for t in sched.timings.values() if t.finish > horizon), key=lambda t: (t.start, t.step.id))
    step = timing.step
    if step.kind == "milestone":
        return Finding(plans.infra_file.display if plans.infra_file else "infra.yaml", "deadline",
                       f"{step.id} is due after the year 9999", "error", ("milestones",))
    return _step_finding(plans, step.dept, step.subject, step.kind, "deadline",
                         f"{step.id} would finish after the year 9999 (it starts {timing.start / 86400:.3g} days "
                         f"after the start and takes {timing.duration / 86400:.3g} days): check data sizes, "
                         "cutover windows, milestones and --bandwidth", "error")


def validate(plans: PlanSet, options: Options) -> Validation:
    """All findings at once: loading, structure, then the schedule (when the graph is sound)."""
    findings = structural_findings(plans)
    sched = None
    if not any(f.rule == "cycle" for f in findings) and plans.departments:
        sched = schedule(build_graph(plans), options.start, options.model)
        beyond = _beyond_calendar(plans, sched)
        if beyond is not None:
            findings.append(beyond)
            sched = None
        else:
            findings.extend(schedule_findings(plans, sched, options.strict))
    plans.resolve_lines(findings)
    findings.sort(key=lambda f: (f.file, f.line or 1, f.rule, f.message))
    return Validation(findings, sched)
