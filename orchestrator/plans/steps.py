"""Expanding plans into steps and the dependency graph between them (docs/PLAN_FORMAT.md, 'steps').

Step ids are `<dept>/<subject>:<kind>` (e.g. `fj-aic/registry:cutover`); milestones are
`infra:<id>`. The graph is a networkx DiGraph whose nodes carry their `Step` as attribute `step`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import networkx as nx

from .kinds import StepKind
from .loader import PlanSet
from .model import DepartmentPlan, System

# docs/PLAN_FORMAT.md 'Deadlines'.
POLICY_DEADLINES: dict[str, dict[str, date]] = {
    "decommission": {
        "province": date(2018, 2, 28),
        "local": date(2018, 6, 30),
        "institution": date(2018, 12, 31),
    },
    "other": {
        "province": date(2018, 6, 30),
        "local": date(2018, 6, 30),
        "institution": date(2018, 12, 31),
    },
}


@dataclass(frozen=True)
class Step:
    """One unit of work: what the scheduler times and the executor runs as one playbook."""

    id: str
    kind: StepKind
    dept: str
    subject: str
    deadline: date | None
    size_gb: float = 0.0
    change_gb: float = 0.0
    approval: bool = False
    window: tuple[datetime, datetime] | None = None
    ready_on: date | None = None
    """Milestones: the day it is (or is due to be) ready; None if not ready and not due."""

    @property
    def system_id(self) -> str:
        return f"{self.dept}/{self.subject}"


def step_id(dept: str, subject: str, kind: str) -> str:
    return f"{dept}/{subject}:{kind}"


def policy_deadline(plan: DepartmentPlan, kind: str) -> date:
    """The step's deadline: docs/POLICY.md by department level and kind, or the department's own."""
    dept = plan.department
    bucket = "institution" if dept.kind == "institution" else (
        "province" if dept.level == "province" else "local"
    )
    default = POLICY_DEADLINES["decommission" if kind == "decommission" else "other"][bucket]
    if kind != "decommission" and dept.deadline and dept.deadline < default:
        return dept.deadline
    return default


def system_steps(system: System) -> list[StepKind]:
    """The step kinds of one system, in order."""
    if system.excluded:
        return []
    if system.status == "zombie":
        return ["decommission"]
    return ["presync", "cutover", "verify"] + (["share"] if system.share else [])


@dataclass
class StepGraph:
    graph: nx.DiGraph
    steps: dict[str, Step]

    def predecessors(self, node: str) -> list[str]:
        return list(self.graph.predecessors(node))

    def successors(self, node: str) -> list[str]:
        return list(self.graph.successors(node))


def build_graph(plans: PlanSet) -> StepGraph:
    """Expand every plan into steps and connect them; unknown references are skipped (the
    validator reports them), so a graph can be built for any loaded plan set."""
    steps: dict[str, Step] = {}
    edges: list[tuple[str, str]] = []
    last_step: dict[str, str] = {}
    for plan in plans.departments.values():
        dept_id = plan.id
        deadlines = {"decommission": policy_deadline(plan, "decommission"), "other": policy_deadline(plan, "other")}
        for system in plan.systems:
            kinds = system_steps(system)
            previous = None
            window = system.cutover.bounds() if system.cutover and system.cutover.window else None
            for kind in kinds:
                sid = f"{dept_id}/{system.id}:{kind}"
                steps[sid] = Step(
                    id=sid,
                    kind=kind,
                    dept=dept_id,
                    subject=system.id,
                    deadline=deadlines["decommission" if kind == "decommission" else "other"],
                    size_gb=system.data.size_gb,
                    change_gb=system.data.daily_change_gb,
                    approval=bool(system.cutover and system.cutover.approval) and kind == "cutover",
                    window=window if kind == "cutover" else None,
                )
                if previous:
                    edges.append((previous, sid))
                previous = sid
            if previous:
                last_step[f"{dept_id}/{system.id}"] = previous

    milestone_nodes: set[str] = set()
    for plan in plans.departments.values():
        for system in plan.systems:
            if not system.migrates:
                continue
            cutover = step_id(plan.id, system.id, "cutover")
            for dep in system.depends_on:
                if dep.startswith("infra:"):
                    milestone = plans.milestones.get(dep.removeprefix("infra:"))
                    if milestone is None:
                        continue
                    if dep not in milestone_nodes:
                        milestone_nodes.add(dep)
                        steps[dep] = Step(
                            id=dep, kind="milestone", dept="infra", subject=milestone.id,
                            deadline=milestone.due,
                            ready_on=date.min if milestone.ready else milestone.due,
                        )
                    edges.append((dep, cutover))
                else:
                    verify = f"{dep}:verify"
                    if verify in steps:
                        edges.append((verify, cutover))

        systems_by_id = {s.id: s for s in plan.systems}
        for network in plan.private_networks:
            if network.migrate_to == "retain":
                continue
            sid = step_id(plan.id, network.id, "retire")
            steps[sid] = Step(id=sid, kind="retire", dept=plan.id, subject=network.id,
                              deadline=policy_deadline(plan, "retire"))
            for name in network.systems:
                if name in systems_by_id and f"{plan.id}/{name}" in last_step:
                    edges.append((last_step[f"{plan.id}/{name}"], sid))
        if plan.datacenter:
            sid = step_id(plan.id, plan.datacenter.id, "close")
            steps[sid] = Step(id=sid, kind="close", dept=plan.id, subject=plan.datacenter.id,
                              deadline=policy_deadline(plan, "close"))
            for system in plan.systems:
                last = last_step.get(f"{plan.id}/{system.id}")
                if last and system.host in plan.datacenter.hosts:
                    edges.append((last, sid))

    graph = nx.DiGraph()
    graph.add_nodes_from(steps)
    graph.add_edges_from(edges)
    return StepGraph(graph=graph, steps=steps)


def system_dependency_graph(plans: PlanSet) -> nx.DiGraph:
    """Systems and their `depends_on` edges (dependent -> dependency), for the cycle rule."""
    graph = nx.DiGraph()
    for plan in plans.departments.values():
        for system in plan.systems:
            gid = f"{plan.id}/{system.id}"
            graph.add_node(gid)
            for dep in system.depends_on:
                if not dep.startswith("infra:") and dep in plans.systems:
                    graph.add_edge(gid, dep)
    return graph
