"""The executor's decisions with a fake job runner: order, blocking, holding, fusing, retrying,
resuming, check mode and stopping, asserted on the journal it leaves. No lab, no ansible."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from orchestrator.execution.executor import Executor, RunOptions, RunSummary
from orchestrator.execution.runner import RunnerConfig
from orchestrator.journal import Journal
from orchestrator.plans.loader import PlanSet, load_plans
from orchestrator.plans.steps import build_graph
from tests.support import MINI
from tests.support.fake_runner import OK, FakeRunner, approve_all, result
from tests.support.inventory import mini_inventory


@pytest.fixture
def plans() -> PlanSet:
    return load_plans(MINI)


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    with Journal.open(tmp_path / "journal.db") as opened:
        yield opened


def run(plans: PlanSet, journal: Journal, tmp_path: Path, runner: FakeRunner, **choices: Any) -> RunSummary:
    options = RunOptions(work_dir=tmp_path / "jobs", playbook_server=False, backoff_s=0.01,
                         enforce_windows=choices.pop("enforce_windows", False), **choices)
    return Executor(plans, mini_inventory(plans, tmp_path / "inventory.json"), journal, options,
                    job_runner=runner).run()


def states(journal: Journal) -> dict[str, str]:
    return {step: record.state for step, record in journal.step_records().items()}




def test_every_step_runs_once_after_its_dependencies(plans: PlanSet, journal: Journal, tmp_path: Path) -> None:
    approve_all(plans, journal)
    runner = FakeRunner()
    summary = run(plans, journal, tmp_path, runner, parallel=1)
    graph = build_graph(plans)
    runnable = {s for s, step in graph.steps.items() if step.kind != "milestone"}
    assert summary.status == "succeeded" and states(journal) == dict.fromkeys(runnable, "succeeded")
    order = [s for job in runner.calls for s in (job.step_id, *job.also)]
    assert sorted(order) == sorted(runnable)  # each once, a fused presync and cutover in one job
    for step_id in order:
        for pred in graph.predecessors(step_id):
            if pred in runnable:
                assert order.index(pred) < order.index(step_id), f"{step_id} ran before {pred}"
    assert journal.verify().ok


def test_a_failure_blocks_its_dependents_and_independent_work_goes_on(plans: PlanSet, journal: Journal,
                                                                     tmp_path: Path) -> None:
    approve_all(plans, journal)
    runner = FakeRunner(script={"t-hub/registry:verify": [result("failed", "checksums differ")]})
    summary = run(plans, journal, tmp_path, runner)
    got = states(journal)
    assert summary.status == "failed"
    assert got["t-hub/registry:verify"] == "failed"
    for blocked in ("t-hub/registry:share", "t-tax/collection:cutover", "t-hub/hub-net:retire", "t-hub/hub-dc:close"):
        assert got[blocked] == "blocked", blocked
    assert "t-tax/collection:cutover" not in runner.steps()
    assert got["t-hub/archive:verify"] == "succeeded" and got["t-tax/collection:presync"] == "succeeded"
    assert journal.step_records()["t-tax/collection:cutover"].message == \
        "blocked by failed t-hub/registry:verify"


def test_a_gated_cutover_is_held_until_approved(plans: PlanSet, journal: Journal, tmp_path: Path) -> None:
    runner = FakeRunner()
    summary = run(plans, journal, tmp_path, runner)
    assert summary.status == "held" and states(journal)["t-hub/archive:cutover"] == "held"
    assert summary.messages["t-hub/archive:cutover"] == "waits for approval: fjmig approve t-hub/archive"
    assert "t-hub/archive:cutover" not in runner.steps()
    journal.approve("t-hub/archive:cutover", "tester")
    again = FakeRunner()
    assert run(plans, journal, tmp_path, again).status == "succeeded"
    assert "t-hub/archive:cutover" in again.steps()
    assert "t-hub/registry:presync" not in again.steps()  # what succeeded never runs again


def test_a_cutover_outside_its_window_is_held_and_not_fused(plans: PlanSet, journal: Journal,
                                                            tmp_path: Path) -> None:
    approve_all(plans, journal)
    runner = FakeRunner()
    summary = run(plans, journal, tmp_path, runner, enforce_windows=True)
    assert states(journal)["t-hub/archive:cutover"] == "held"
    assert "outside its change window 2017-12-09T22:00+08:00/PT6H" in summary.messages["t-hub/archive:cutover"]
    presync = next(job for job in runner.calls if job.step_id == "t-hub/archive:presync")
    assert presync.playbook == "presync.yml" and presync.also == ()


def test_a_presync_and_its_ready_cutover_run_as_one_job(plans: PlanSet, journal: Journal, tmp_path: Path) -> None:
    approve_all(plans, journal)
    runner = FakeRunner()
    run(plans, journal, tmp_path, runner)
    fused = next(job for job in runner.calls if job.step_id == "t-hub/registry:presync")
    assert fused.playbook == "cutover.yml" and fused.also == ("t-hub/registry:cutover",)
    assert fused.extravars["fjmig_with_presync"] is True
    records = journal.step_records()
    assert records["t-hub/registry:presync"].stats == {"changed": 1, "bytes": 1000, "with": "t-hub/registry:cutover"}
    cutover_events = [e["data"] for e in journal.events("t-hub/registry:cutover")]
    assert cutover_events[0] == {"state": "running", "message": "in one job with t-hub/registry:presync"}
    assert records["t-hub/registry:cutover"].stats["changed"] == 0  # the job's one change was the presync's
    # the cross-department cutover waits for registry's verify: it cannot be fused with its presync
    assert next(job for job in runner.calls if job.step_id == "t-tax/collection:presync").also == ()


def test_a_fused_job_that_fails_before_its_copy_fails_the_presync(plans: PlanSet, journal: Journal,
                                                                  tmp_path: Path) -> None:
    approve_all(plans, journal)
    runner = FakeRunner(script={"t-hub/registry:presync": [result("failed", "rsync exited 23")]})
    run(plans, journal, tmp_path, runner)
    got = states(journal)
    assert got["t-hub/registry:presync"] == "failed" and got["t-hub/registry:cutover"] == "blocked"
    assert not [e for e in journal.events("t-hub/registry:cutover") if e["data"]["state"] == "running"]


def test_unreachable_hosts_are_retried_then_fail(plans: PlanSet, journal: Journal, tmp_path: Path) -> None:
    approve_all(plans, journal)
    flaky = [result("unreachable", "host hub-db01 unreachable")] * 2 + [OK]
    dead = [result("unreachable", "host tax-app01 unreachable")]
    runner = FakeRunner(script={"t-hub/old-annual:decommission": flaky, "t-tax/collection:presync": dead})
    summary = run(plans, journal, tmp_path, runner, retries=2)
    records = journal.step_records()
    assert records["t-hub/old-annual:decommission"].state == "succeeded"
    assert records["t-hub/old-annual:decommission"].attempts == 3
    assert records["t-tax/collection:presync"].state == "failed"
    assert records["t-tax/collection:presync"].message == "host tax-app01 unreachable (after 3 attempts)"
    assert runner.steps().count("t-tax/collection:presync") == 3 and summary.status == "failed"


def test_a_run_resumes_what_a_dead_run_left_running(plans: PlanSet, journal: Journal, tmp_path: Path) -> None:
    approve_all(plans, journal)
    dead = journal.start_run("tester", {})
    journal.record(dead, "t-hub/registry:presync", "running")
    runner = FakeRunner()
    summary = run(plans, journal, tmp_path, runner)
    assert summary.status == "succeeded"
    cancel = runner.calls[0]  # before anything reruns: stop what the dead run's job left on its hosts
    assert cancel.playbook == "cancel.yml" and cancel.step_id == "cancel"
    token = f"{journal.identity()}:t-hub/registry:presync"
    assert cancel.extravars["fjmig_cancel_tokens"] == [token]
    assert set(cancel.hosts) == {"hub-app01", "t-hub-registry"}
    events = [e["data"]["state"] for e in journal.events("t-hub/registry:presync")]
    assert events == ["running", "interrupted", "running", "succeeded"]
    assert [r["status"] for r in journal.runs()] == ["died", "succeeded"]


def test_until_selects_kinds_up_to_its_rank(plans: PlanSet, journal: Journal, tmp_path: Path) -> None:
    runner = FakeRunner()
    summary = run(plans, journal, tmp_path, runner, until="presync")
    assert summary.status == "succeeded"
    assert {s.rsplit(":", 1)[1] for s in states(journal)} == {"presync", "decommission"}
    assert all(job.also == () for job in runner.calls)  # the cutover is not selected: nothing fused


def test_check_mode_journals_no_step_state(plans: PlanSet, journal: Journal, tmp_path: Path) -> None:
    runner = FakeRunner()
    summary = run(plans, journal, tmp_path, runner, check=True)
    assert summary.status == "succeeded" and states(journal) == {}
    notes = [e for e in journal.events() if e["kind"] == "check-step"]
    assert {e["step_id"] for e in notes} == {s for s, st in summary.states.items() if st == "succeeded"}
    assert all(e["data"]["state"] == "succeeded" for e in notes)


def test_stop_cancels_running_jobs_and_starts_no_more(plans: PlanSet, journal: Journal, tmp_path: Path) -> None:
    approve_all(plans, journal)
    runner = FakeRunner(block={"t-hub/registry:presync"})
    executor = Executor(plans, mini_inventory(plans, tmp_path / "inv.json"), journal,
                        RunOptions(work_dir=tmp_path / "jobs", playbook_server=False, parallel=1,
                                   enforce_windows=False), job_runner=runner)
    threading.Thread(target=lambda: runner.started.wait(30) and executor.stop()).start()
    summary = executor.run()
    assert summary.status == "interrupted"
    assert states(journal)["t-hub/registry:presync"] == "interrupted"
    assert runner.steps() == ["t-hub/registry:presync"]  # --parallel 1: nothing else started, nothing after


def test_a_playbook_server_fallback_is_reported_and_journaled(plans: PlanSet, journal: Journal,
                                                              tmp_path: Path) -> None:
    class Server:
        """A run's playbook server that says some jobs' configuration did not match its own."""

        def __init__(self, config: RunnerConfig) -> None:
            pass

        def __enter__(self) -> Server:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def wait_ready(self) -> str:
            return "/nonexistent/socket"

        def stats(self) -> dict[str, int]:
            return {"forked": 3, "fallback": 2}

    summary = Executor(plans, mini_inventory(plans, tmp_path / "inv.json"), journal,
                       RunOptions(work_dir=tmp_path / "jobs", until="presync"), job_runner=FakeRunner(),
                       server_factory=Server).run()
    assert summary.fallback and "2 of 5 jobs ran a fresh ansible-playbook" in summary.fallback
    notes = [e for e in journal.events() if e["kind"] == "playbook-server-fallback"]
    assert notes and notes[0]["data"]["fallback"] == 2 and notes[0]["run_id"] == summary.run_id
