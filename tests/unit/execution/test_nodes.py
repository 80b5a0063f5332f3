"""Execution nodes without a lab: which node runs a job, the refusal when none can, and what the
executor does when a node is lost (fake runner)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.execution import runs
from orchestrator.execution.executor import Executor, RunOptions
from orchestrator.execution.inventory import Inventory
from orchestrator.execution.jobs import Job
from orchestrator.execution.nodes import NODES_GROUP, NodeError, nodes_of, refusal, route, unroutable
from orchestrator.execution.runner import JobResult
from orchestrator.journal import Journal
from orchestrator.plans.loader import load_plans
from tests.support import MINI
from tests.support.fake_runner import OK, FakeRunner, approve_all
from tests.support.inventory import mini_inventory

NODE_VARS = {"ansible_host": "198.18.0.200", "ansible_ssh_private_key_file": "/k", "fjmig_control_known_hosts": "/kh",
             "fjmig_node_venv": "/venv", "fjmig_node_key": "/root/.ssh/node", "fjmig_node_known_hosts": "/root/kh"}


def inventory(nodes: dict[str, list[str]], path: Path = Path("inv.json")) -> Inventory:
    """Groups: a department (src1, src2, office), two target groups with a target each, a platform."""
    groups = {"dept": ["src1", "src2"], "offices": ["office"], "provincial": ["tgt1"], "city": ["tgt2"],
              "platform": ["sharing-platform"], NODES_GROUP: list(nodes)}
    children = {"dept": ["offices"]}
    hostvars: dict[str, dict[str, Any]] = {h: {} for hosts in groups.values() for h in hosts}
    for name, serves in nodes.items():
        hostvars[name] = {**NODE_VARS, "fjmig_node_serves": serves}
    return Inventory(path, hostvars, groups, {}, children)


def job(step_id: str, *hosts: str) -> Job:
    return Job(step_id, "presync.yml", {}, hosts)


def test_a_job_runs_on_the_node_that_reaches_all_its_hosts() -> None:
    nodes = nodes_of(inventory({"node-a": ["dept", "provincial", "platform"], "node-b": ["dept", "city"],
                                "node-all": ["dept", "provincial", "city", "platform"]}))
    assert nodes["node-a"].reach == {"src1", "src2", "office", "tgt1", "sharing-platform"}  # child groups too
    assert route(nodes, ["src1", "tgt2"]).name == "node-b"  # type: ignore[union-attr]
    assert route(nodes, ["src1", "tgt1"]).name == "node-a"  # type: ignore[union-attr]  (the fewest hosts)
    assert route(nodes, ["tgt1", "tgt2", "sharing-platform"]).name == "node-all"  # type: ignore[union-attr]
    assert route(nodes, ["office"]).name == "node-b"  # type: ignore[union-attr]  (a tie: the smaller reach)
    assert route(nodes, []) is None and route({}, ["src1"]) is None  # nothing to reach / no nodes: local
    assert route(nodes, ["stranger"]) is None


def test_a_node_must_declare_what_it_serves_and_how_it_is_reached() -> None:
    inv = inventory({"node-a": ["dept"]})
    del inv.hostvars["node-a"]["fjmig_node_key"]
    with pytest.raises(NodeError, match=r"execution node node-a lacks fjmig_node_key \(the node's private key"):
        nodes_of(inv)
    with pytest.raises(NodeError, match="node-a serves nowhere, which the inventory has no group of"):
        nodes_of(inventory({"node-a": ["nowhere"]}))
    with pytest.raises(NodeError, match="must be a list of groups"):
        nodes_of(inventory({"node-a": "dept"}))  # type: ignore[dict-item]
    assert nodes_of(inventory({})) == {}


def test_the_refusal_names_each_job_and_its_hosts() -> None:
    nodes = nodes_of(inventory({"node-a": ["dept", "provincial"], "node-b": ["city"]}))
    jobs = [job("d/s:presync", "src1", "tgt1"), job("d/t:presync", "src1", "tgt2"),
            job("d/u:share", "sharing-platform")]
    missing = unroutable(nodes, jobs)
    assert [j.step_id for j in missing] == ["d/t:presync", "d/u:share"]
    text = refusal(nodes, missing, Path("hosts.yml"))
    assert "inventory hosts.yml" in text and "nothing was started" in text
    assert "d/t:presync: hosts src1, tgt2; no single node reaches them all" in text
    assert "d/u:share: hosts sharing-platform; no node reaches sharing-platform" in text


def test_a_run_no_node_can_serve_starts_nothing(tmp_path: Path) -> None:
    plans = load_plans(MINI)
    inv = mini_inventory(plans, tmp_path / "inventory.json")
    inv.groups["hub"] = ["hub-app01", "hub-db01"]
    inv.groups[NODES_GROUP] = ["node-hub"]
    inv.hostvars["node-hub"] = {**NODE_VARS, "fjmig_node_serves": ["hub"]}
    journal = tmp_path / "journal.db"
    with pytest.raises(NodeError) as refused:
        runs.run(plans, inv, journal, runs.options_for(journal, playbook_server=False))
    why = "t-hub/registry:presync: hosts hub-app01, t-hub-registry; no node reaches t-hub-registry"
    assert why in str(refused.value)
    with Journal.open(journal, readonly=True) as j:
        assert j.runs() == [] and j.step_records() == {}


def lost(node: str = "node-a") -> JobResult:
    return JobResult("lost", 255, f"execution node {node} lost during the job: Connection reset", {}, node=node)


def test_a_lost_node_interrupts_the_job_which_is_retried(tmp_path: Path) -> None:
    plans = load_plans(MINI)
    with Journal.open(tmp_path / "journal.db") as journal:
        approve_all(plans, journal)
        runner = FakeRunner(script={"t-hub/old-annual:decommission": [lost(), lost(), OK],
                                    "t-tax/collection:presync": [lost("node-b")]})
        options = RunOptions(work_dir=tmp_path / "jobs", playbook_server=False, backoff_s=0.01, retries=2,
                             enforce_windows=False)
        summary = Executor(plans, mini_inventory(plans, tmp_path / "inventory.json"), journal, options,
                           job_runner=runner).run()
        records = journal.step_records()
        events = [(e["step_id"], e["data"].get("state")) for e in journal.events() if e["kind"] == "step"]
        notes = [e for e in journal.events() if e["kind"] == "node-lost"]
    decommission = "t-hub/old-annual:decommission"
    assert [state for step, state in events if step == decommission] == [
        "running", "interrupted", "running", "interrupted", "running", "succeeded"]  # interrupted, not failed
    assert records[decommission].state == "succeeded" and records[decommission].attempts == 3
    presync = records["t-tax/collection:presync"]
    assert presync.state == "failed" and presync.attempts == 3
    assert presync.message == "execution node node-b lost during the job: Connection reset (after 3 attempts)"
    assert {(n["step_id"], n["data"]["node"]) for n in notes} == {(decommission, "node-a"),
                                                                  ("t-tax/collection:presync", "node-b")}
    assert set(summary.lost_nodes) == {"node-a", "node-b"}
