"""The step graph: PLAN_FORMAT.md 'The steps a plan expands to', edge by edge, and 'Deadlines'."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import networkx as nx
import pytest

from orchestrator.plans.loader import load_plans
from orchestrator.plans.model import DepartmentPlan
from orchestrator.plans.steps import StepGraph, build_graph, policy_deadline, system_steps
from tests.support import PLANS
from tests.support.plans import department, system, unique_hosts, write_plans


def graph_of(tmp_path: Path, *plans: dict, **kw: object) -> StepGraph:
    loaded = load_plans(write_plans(tmp_path, *plans, **kw))
    assert loaded.findings == [], [f.message for f in loaded.findings]
    return build_graph(loaded)


def edges(g: StepGraph) -> set[tuple[str, str]]:
    return set(g.graph.edges())


def test_active_system_chain_with_and_without_share(tmp_path: Path) -> None:
    plan = department(systems=[system("shared", share=True), system("private")])
    plan["datacenter"]["hosts"] = ["h-app"]
    g = graph_of(tmp_path, plan)
    assert set(g.steps) == {
        "fj-test/shared:presync", "fj-test/shared:cutover", "fj-test/shared:verify", "fj-test/shared:share",
        "fj-test/private:presync", "fj-test/private:cutover", "fj-test/private:verify",
        "fj-test/fjtest-dc:close",
    }
    assert edges(g) == {
        ("fj-test/shared:presync", "fj-test/shared:cutover"),
        ("fj-test/shared:cutover", "fj-test/shared:verify"),
        ("fj-test/shared:verify", "fj-test/shared:share"),
        ("fj-test/private:presync", "fj-test/private:cutover"),
        ("fj-test/private:cutover", "fj-test/private:verify"),
        # close waits for the last step of every system in the data center
        ("fj-test/shared:share", "fj-test/fjtest-dc:close"),
        ("fj-test/private:verify", "fj-test/fjtest-dc:close"),
    }
    step = g.steps["fj-test/shared:presync"]
    assert (step.kind, step.dept, step.subject, step.system_id) == ("presync", "fj-test", "shared", "fj-test/shared")


def test_zombie_is_only_decommissioned(tmp_path: Path) -> None:
    plan = department(systems=[system("old", status="zombie", share=True)])
    g = graph_of(tmp_path, plan)
    assert set(g.steps) == {"fj-test/old:decommission", "fj-test/fjtest-dc:close"}
    assert edges(g) == {("fj-test/old:decommission", "fj-test/fjtest-dc:close")}


@pytest.mark.parametrize("classification", ["classified", "police-sensitive"])
def test_excluded_system_has_no_steps(tmp_path: Path, classification: str) -> None:
    plan = department()
    plan["systems"][1]["classification"] = classification
    plan["private_networks"][0]["systems"] = ["alpha"]
    g = graph_of(tmp_path, plan)
    assert not [s for s in g.steps if "/beta:" in s]
    assert system_steps(load_plans(tmp_path).departments["fj-test"].systems[1]) == []
    # close does not wait for it: it has nothing to wait for
    assert set(g.graph.predecessors("fj-test/fjtest-dc:close")) == {"fj-test/alpha:verify"}


def test_retire_waits_for_the_last_step_of_every_system_on_the_network(tmp_path: Path) -> None:
    plan = department(systems=[system("aa", share=True), system("bb"), system("zz", status="zombie"), system("off")])
    plan["private_networks"] = [
        {"id": "net-one", "cidr": "172.20.0.0/24", "systems": ["aa", "bb", "zz"], "migrate_to": "extranet"},
        {"id": "net-two", "cidr": "172.20.1.0/24", "systems": ["off"], "migrate_to": "intranet"},
        {"id": "net-kept", "cidr": "172.20.2.0/24", "systems": ["aa"], "migrate_to": "retain",
         "retain_approval": {"by": "省政府", "date": date(2017, 9, 1), "reason": "专线"}},
    ]
    g = graph_of(tmp_path, plan)
    assert load_plans(tmp_path).findings == []
    assert set(g.graph.predecessors("fj-test/net-one:retire")) == {
        "fj-test/aa:share", "fj-test/bb:verify", "fj-test/zz:decommission"}
    assert set(g.graph.predecessors("fj-test/net-two:retire")) == {"fj-test/off:verify"}
    assert "fj-test/net-kept:retire" not in g.steps  # retained networks are not retired
    assert g.steps["fj-test/net-one:retire"].kind == "retire"


def test_close_only_for_systems_in_the_data_center_and_none_without_one(tmp_path: Path) -> None:
    plan = department()
    del plan["datacenter"]
    plan["private_networks"] = []
    for item in plan["systems"]:
        item["host"] = "h-app"
    g = graph_of(tmp_path, plan)
    assert not [s for s in g.steps if s.endswith(":close")]  # (host findings are the validator's job)


def test_depends_on_makes_cutover_wait_for_the_dependency_verify(tmp_path: Path) -> None:
    a = department("fj-aaa")
    b = department("fj-bbb")
    b["systems"][0]["depends_on"] = ["fj-aaa/beta", "fj-bbb/beta"]
    g = graph_of(tmp_path, unique_hosts(a), unique_hosts(b))
    assert set(g.graph.predecessors("fj-bbb/alpha:cutover")) == {
        "fj-bbb/alpha:presync", "fj-aaa/beta:verify", "fj-bbb/beta:verify"}
    # presync does not wait: the bulk copy runs while everything still serves
    assert set(g.graph.predecessors("fj-bbb/alpha:presync")) == set()


def test_milestone_dependencies(tmp_path: Path) -> None:
    plan = department()
    plan["systems"][0]["depends_on"] = ["infra:provincial-cloud"]
    plan["systems"][1]["depends_on"] = ["infra:municipal-dc-fuzhou", "infra:provincial-cloud"]
    g = graph_of(tmp_path, plan)
    ready, due = g.steps["infra:provincial-cloud"], g.steps["infra:municipal-dc-fuzhou"]
    assert (ready.kind, ready.ready_on, ready.dept) == ("milestone", date.min, "infra")
    assert (due.ready_on, due.deadline) == (date(2018, 4, 30), date(2018, 4, 30))
    assert set(g.graph.successors("infra:provincial-cloud")) == {"fj-test/alpha:cutover", "fj-test/beta:cutover"}
    assert set(g.graph.successors("infra:municipal-dc-fuzhou")) == {"fj-test/beta:cutover"}
    # milestones nobody depends on are not steps
    assert [s for s in g.steps if s.startswith("infra:")] == ["infra:provincial-cloud", "infra:municipal-dc-fuzhou"]


def test_dependencies_of_zombies_and_on_excluded_systems_add_no_edges(tmp_path: Path) -> None:
    plan = department(systems=[
        system("zomb", status="zombie", depends_on=["fj-test/live"]),
        system("live", depends_on=["fj-test/secret"]),
        system("secret", classification="classified"),
    ])
    g = graph_of(tmp_path, plan)
    assert set(g.graph.predecessors("fj-test/zomb:decommission")) == set()
    assert set(g.graph.predecessors("fj-test/live:cutover")) == {"fj-test/live:presync"}


def test_approval_and_window_only_on_the_cutover(tmp_path: Path) -> None:
    plan = department()
    plan["systems"][0]["cutover"] = {"window": "2017-12-09T22:00+08:00/PT6H", "approval": True}
    g = graph_of(tmp_path, plan)
    cutover, presync = g.steps["fj-test/alpha:cutover"], g.steps["fj-test/alpha:presync"]
    assert cutover.approval and not presync.approval
    assert cutover.window is not None and presync.window is None
    assert cutover.window[1] - cutover.window[0] == (cutover.window[1] - cutover.window[0]).__class__(hours=6)
    assert (cutover.size_gb, cutover.change_gb) == (10, 1)


def test_shipped_plans_graph_is_acyclic_and_complete() -> None:
    plans = load_plans(PLANS)
    g = build_graph(plans)
    assert nx.is_directed_acyclic_graph(g.graph)
    assert set(g.graph.nodes) == set(g.steps)
    for plan in plans.departments.values():
        for item in plan.systems:
            ids = [s for s in g.steps if s.startswith(f"{plan.id}/{item.id}:")]
            assert sorted(ids) == sorted(f"{plan.id}/{item.id}:{k}" for k in system_steps(item))


# --- deadlines -----------------------------------------------------------------------------


def model(**overrides: object) -> DepartmentPlan:
    return DepartmentPlan.model_validate(department(**overrides))


@pytest.mark.parametrize(("overrides", "decommission", "other"), [
    ({}, date(2018, 2, 28), date(2018, 6, 30)),
    ({"kind": "party"}, date(2018, 2, 28), date(2018, 6, 30)),
    ({"level": "city", "city": "fuzhou"}, date(2018, 6, 30), date(2018, 6, 30)),
    ({"level": "county", "city": "ningde", "kind": "party"}, date(2018, 6, 30), date(2018, 6, 30)),
    ({"kind": "institution", "funding": "full"}, date(2018, 12, 31), date(2018, 12, 31)),
    ({"level": "city", "city": "xiamen", "kind": "institution", "funding": "self"},
     date(2018, 12, 31), date(2018, 12, 31)),
    # a department's own, earlier deadline replaces the second row only
    ({"deadline": date(2017, 12, 31)}, date(2018, 2, 28), date(2017, 12, 31)),
    ({"kind": "institution", "funding": "full", "deadline": date(2018, 9, 1)}, date(2018, 12, 31), date(2018, 9, 1)),
    # a later one changes nothing
    ({"deadline": date(2019, 1, 1)}, date(2018, 2, 28), date(2018, 6, 30)),
])
def test_policy_deadlines(overrides: dict[str, object], decommission: date, other: date) -> None:
    plan = model(**overrides)
    assert policy_deadline(plan, "decommission") == decommission
    for kind in ("presync", "cutover", "verify", "share", "retire", "close"):
        assert policy_deadline(plan, kind) == other


def test_steps_carry_their_deadline(tmp_path: Path) -> None:
    plan = department(deadline=date(2017, 12, 31))
    plan["systems"][1]["status"] = "zombie"
    g = graph_of(tmp_path, plan)
    assert g.steps["fj-test/alpha:cutover"].deadline == date(2017, 12, 31)
    assert g.steps["fj-test/beta:decommission"].deadline == date(2018, 2, 28)
    assert g.steps["fj-test/fjtest-net:retire"].deadline == date(2017, 12, 31)
    assert g.steps["fj-test/fjtest-dc:close"].deadline == date(2017, 12, 31)
