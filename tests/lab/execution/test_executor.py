"""The executor end to end on the real lab: sshd in network namespaces, ansible-runner, rsync.

Most tests use the small plan set in tests/fixtures/mini (two departments, 16 steps) on a lab of
their own; one migrates the shipped plans in full.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sqlite3
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.journal import Journal
from tests.support import MINI, PLANS
from tests.support.lab_runs import (
    approve_all,
    assert_moved,
    events,
    fjmig,
    host_path,
    http_get,
    lab_of,
    manifest,
    outputs,
    playbooks_of,
    run,
    sha256,
    start_run,
    states,
    step_stats,
    tagged,
    wait_for_state,
)
from tests.support.waiting import wait_for

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root (network namespaces)"),
]


@pytest.fixture
def mini_lab(tmp_path: Path) -> Iterator[Path]:
    with lab_of(MINI, tmp_path / "lab", "fjex", 1) as lab:
        yield lab


# -- full migration ---------------------------------------------------------------------------


@pytest.mark.slow
def test_full_migration_of_the_shipped_plans(tmp_path: Path) -> None:
    with lab_of(PLANS, tmp_path / "lab", "fjexf", 2) as lab:
        journal = tmp_path / "journal.db"
        approve_all(journal, PLANS)
        result = run(lab, journal, "--parallel", "4", plans=PLANS)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

        out = outputs(lab)
        for gid in out["targets"]:
            assert_moved(lab, gid)
        from orchestrator.plans.loader import load_plans

        plans = load_plans(PLANS)
        for gid, (_plan, system) in plans.systems.items():
            if system.status == "zombie":
                dept, name = gid.split("/")
                archive_host = out["archives"][dept]["host"]
                archive = host_path(lab, archive_host, f"/srv/archive/{dept}/{name}.tar.gz")
                recorded = archive.with_name(archive.name + ".sha256").read_text().split()[0]
                assert sha256(archive) == recorded
                with tarfile.open(archive) as tar:
                    names = {m.name.removeprefix("./") for m in tar.getmembers() if m.isfile()}
                assert names == set(manifest(lab)[gid]["files"])
        assert all(s == "succeeded" for s in states(journal).values())
        assert fjmig("journal", "verify", "--journal", str(journal)).returncode == 0

        # Every cutover journaled the downtime it caused (freeze to switch), and status shows it.
        with Journal.open(journal, readonly=True) as j:
            downtimes = {k: r.stats["downtime_s"] for k, r in j.step_records().items() if k.endswith(":cutover")}
        assert downtimes and all(0 < seconds < 60 for seconds in downtimes.values()), downtimes
        status = json.loads(fjmig("status", str(PLANS), "--journal", str(journal), "--format", "json").stdout)
        shown = {f"{dept}/{system}:cutover": seconds for dept, row in status["departments"].items()
                 for system, seconds in row["downtime_s"].items()}
        assert shown == downtimes

        # A second run has nothing to do and runs nothing.
        before = len(Journal.open(journal, readonly=True).events())
        again = run(lab, journal, plans=PLANS)
        assert again.returncode == 0, again.stdout + again.stderr
        after = Journal.open(journal, readonly=True).events()
        assert [e["kind"] for e in after[before:]] == ["run-started", "run-finished"]


# -- idempotency, check mode, approvals -------------------------------------------------------


def test_second_full_run_changes_nothing(mini_lab: Path, tmp_path: Path) -> None:
    first = tmp_path / "first.db"
    approve_all(first)
    assert run(mini_lab, first).returncode == 0
    # A fresh journal reruns every playbook against the migrated lab: nothing may change.
    second = tmp_path / "second.db"
    approve_all(second)
    result = run(mini_lab, second)
    assert result.returncode == 0, result.stdout + result.stderr
    with Journal.open(second, readonly=True) as j:
        changed = {k: r.stats["changed"] for k, r in j.step_records().items()}
    assert len(changed) == 15
    assert all(count == 0 for count in changed.values()), changed


def test_check_mode_changes_nothing(mini_lab: Path, tmp_path: Path) -> None:
    journal = tmp_path / "journal.db"
    office_hosts = host_path(mini_lab, "office-t-hub", "/etc/hosts")
    hosts_before = office_hosts.read_text() if office_hosts.exists() else None
    result = run(mini_lab, journal, "--check")
    assert result.returncode == 0, result.stdout + result.stderr
    for gid, target in outputs(mini_lab)["targets"].items():
        data = host_path(mini_lab, target["host"], manifest(mini_lab)[gid]["path"])
        assert not data.exists() or not any(data.iterdir()), f"check mode copied data to {target['host']}"
    if hosts_before is not None:
        assert office_hosts.read_text() == hosts_before
    assert states(journal) == {}  # check mode records no step state
    registry = outputs(mini_lab)["services"]["t-hub/registry"]
    assert http_get(_source_address(mini_lab, "hub-app01"), registry["port"])


def _source_address(lab: Path, host: str) -> str:
    inventory = json.loads((lab / "inventory.json").read_text())

    def find(group: dict) -> str | None:
        if host in (group.get("hosts") or {}):
            return (group["hosts"][host] or {}).get("ansible_host")
        for child in (group.get("children") or {}).values():
            found = find(child or {})
            if found:
                return found
        return None

    address = find(inventory["all"])
    assert address, f"{host} not in the lab inventory"
    return address


def test_approval_gate_holds_then_passes(mini_lab: Path, tmp_path: Path) -> None:
    journal = tmp_path / "journal.db"
    held = run(mini_lab, journal)
    assert held.returncode == 3, held.stdout + held.stderr
    assert states(journal)["t-hub/archive:cutover"] == "held"
    assert states(journal)["t-hub/archive:presync"] == "succeeded"
    assert "with" not in step_stats(journal, "t-hub/archive:presync")  # ran alone: its cutover may not start
    assert "fjmig approve t-hub/archive" in held.stdout
    status = fjmig("status", str(MINI), "--journal", str(journal), "--format", "json")
    hub = json.loads(status.stdout)["departments"]["t-hub"]
    assert [h["step"] for h in hub["held"]] == ["t-hub/archive:cutover"]

    approved = fjmig("approve", "t-hub/archive", str(MINI), "--journal", str(journal), "--by", "zhang.wei")
    assert approved.returncode == 0, approved.stderr
    result = run(mini_lab, journal)
    assert result.returncode == 0, result.stdout + result.stderr
    with Journal.open(journal, readonly=True) as j:
        assert j.approvals()["t-hub/archive:cutover"].approved_by == "zhang.wei"
        assert j.step_records()["t-hub/archive:cutover"].state == "succeeded"
    assert_moved(mini_lab, "t-hub/archive")


def test_a_presync_and_its_cutover_due_back_to_back_run_as_one_job(mini_lab: Path, tmp_path: Path) -> None:
    """One job copies the data and cuts over (cutover.yml with fjmig_with_presync); the journal still
    has each step: the presync done when its copy succeeded, then the cutover."""
    journal = tmp_path / "journal.db"
    result = run(mini_lab, journal, "--only", "t-hub/registry", "--until", "cutover")
    assert result.returncode == 0, result.stdout + result.stderr
    with Journal.open(journal, readonly=True) as j:
        records = j.step_records()
        steps = [(e["step_id"], e["data"]["state"]) for e in j.events() if e["kind"] == "step"]
    presync, cutover = records["t-hub/registry:presync"], records["t-hub/registry:cutover"]
    assert steps == [("t-hub/registry:presync", "running"), ("t-hub/registry:presync", "succeeded"),
                     ("t-hub/registry:cutover", "running"), ("t-hub/registry:cutover", "succeeded")]
    size = sum(f["size"] for f in manifest(mini_lab)["t-hub/registry"]["files"].values())
    assert presync.stats == {"bytes": size, "changed": 1, "with": "t-hub/registry:cutover"}
    assert presync.finished_at and cutover.started_at and presync.finished_at <= cutover.started_at
    assert cutover.stats and cutover.stats["bytes"] == 0 and 0 < cutover.stats["downtime_s"] < 30
    assert cutover.stats["changed"] > 0  # stopped, started, switched: counted for the cutover alone
    # one job: both steps keep its log, which holds the presync's play and the freeze
    logs = [tmp_path / "logs" / f"t-hub__registry--{kind}.log" for kind in ("presync", "cutover")]
    assert logs[0].read_text() == logs[1].read_text()
    assert "PLAY [Presync the data to the target]" in logs[0].read_text()
    assert "PLAY [Cut the system over to the target]" in logs[0].read_text()
    # and it did both: the data on the target, the service there, the office's name for it
    assert_moved(mini_lab, "t-hub/registry")
    entry, target = manifest(mini_lab)["t-hub/registry"], outputs(mini_lab)["targets"]["t-hub/registry"]
    service = outputs(mini_lab)["services"]["t-hub/registry"]
    first = sorted(entry["files"])[0]
    answer = http_get(target["address"], target.get("port") or service["port"], "/" + first)
    assert hashlib.sha256(answer).hexdigest() == entry["files"][first]["sha256"]
    names = host_path(mini_lab, "office-t-hub", "/etc/hosts").read_text()
    assert any(line.split()[:2] == [target["address"], service["name"]] for line in names.splitlines())

    # A presync run on its own (--until presync) is one job, and its cutover another, later.
    assert run(mini_lab, journal, "--only", "t-tax/collection", "--until", "presync").returncode == 0
    assert "with" not in step_stats(journal, "t-tax/collection:presync")


def test_cutover_outside_its_window_is_held_unless_rehearsing(mini_lab: Path, tmp_path: Path) -> None:
    """In production (inventory + outputs) a cutover only starts inside its plan's change window;
    --lab is a rehearsal and --ignore-windows an explicit, journaled override."""
    journal = tmp_path / "journal.db"
    approve_all(journal)
    production = [str(MINI), "--inventory", str(mini_lab / "inventory.json"),
                  "--outputs", str(mini_lab / "outputs.json"), "--journal", str(journal), "--until", "cutover"]
    held = fjmig("run", *production)
    assert held.returncode == 3, held.stdout + held.stderr
    current = states(journal)
    assert current["t-hub/archive:cutover"] == "held"  # window 2017-12-09T22:00+08:00/PT6H, long closed
    assert current["t-hub/archive:presync"] == "succeeded"
    assert current["t-hub/registry:cutover"] == "succeeded"  # no window: not held
    # An enforced window is checked when the cutover starts, so that one is never run in one job
    # with its presync (which could end after the window); the one without a window is.
    assert "with" not in step_stats(journal, "t-hub/archive:presync")
    assert step_stats(journal, "t-hub/registry:presync")["with"] == "t-hub/registry:cutover"
    assert "outside its change window 2017-12-09T22:00+08:00/PT6H" in held.stdout
    assert "--ignore-windows" in held.stdout

    forced = fjmig("run", *production, "--ignore-windows")
    # (exit 3 still: t-tax/collection's cutover waits for a verify that --until cutover leaves out)
    assert forced.returncode in (0, 3) and "Traceback" not in forced.stderr, forced.stdout + forced.stderr
    assert "outside its change window" not in forced.stdout
    assert states(journal)["t-hub/archive:cutover"] == "succeeded"
    with Journal.open(journal, readonly=True) as j:
        runs = [e["data"]["args"]["windows"] for e in j.events() if e["kind"] == "run-started"]
    assert runs == ["enforced", "not enforced"]
    assert_moved(mini_lab, "t-hub/archive")


# -- failures ---------------------------------------------------------------------------------


def test_corrupted_target_fails_verify_and_rollback_restores_the_source(mini_lab: Path, tmp_path: Path) -> None:
    journal = tmp_path / "journal.db"
    assert run(mini_lab, journal, "--only", "t-hub/registry", "--until", "cutover").returncode == 0
    entry = manifest(mini_lab)["t-hub/registry"]
    target = outputs(mini_lab)["targets"]["t-hub/registry"]
    victim = host_path(mini_lab, target["host"], entry["path"]) / sorted(entry["files"])[0]
    victim.write_bytes(b"corrupted")

    result = run(mini_lab, journal)
    assert result.returncode == 1
    current = states(journal)
    assert current["t-hub/registry:verify"] == "failed"
    assert current["t-tax/collection:cutover"] == "blocked"
    assert current["t-hub/registry:share"] == "blocked"
    assert current["t-hub/archive:presync"] == "succeeded"  # independent work went on

    port = target.get("port") or outputs(mini_lab)["services"]["t-hub/registry"]["port"]
    rolled = fjmig("rollback", "t-hub/registry", str(MINI), "--lab", str(mini_lab), "--journal", str(journal))
    assert rolled.returncode == 0, rolled.stdout + rolled.stderr
    source = _source_address(mini_lab, "hub-app01")
    first = sorted(entry["files"])[0]
    assert hashlib.sha256(http_get(source, port, "/" + first)).hexdigest() == entry["files"][first]["sha256"]
    with pytest.raises(OSError):
        http_get(target["address"], port, timeout=2)
    names = host_path(mini_lab, "office-t-hub", "/etc/hosts").read_text()
    service = outputs(mini_lab)["services"]["t-hub/registry"]
    assert any(line.split()[:2] == [service["source_address"], service["name"]] for line in names.splitlines())
    assert states(journal)["t-hub/registry:cutover"] == "rolled-back"


def test_rollback_is_refused_after_verify(mini_lab: Path, tmp_path: Path) -> None:
    journal = tmp_path / "journal.db"
    assert run(mini_lab, journal, "--only", "t-hub/registry", "--until", "verify").returncode == 0
    refused = fjmig("rollback", "t-hub/registry", str(MINI), "--lab", str(mini_lab), "--journal", str(journal))
    assert refused.returncode == 1
    assert "verify has passed" in refused.stderr and "Traceback" not in refused.stderr


def _kill_sshd(lab: Path, host: str) -> None:
    from orchestrator.lab import load_lab

    pid = load_lab(lab).sshd_pid(host)
    assert pid, f"no sshd recorded for {host}"
    os.kill(pid, signal.SIGTERM)


def test_unreachable_host_retries_then_fails_and_blocks_dependents(mini_lab: Path, tmp_path: Path) -> None:
    journal = tmp_path / "journal.db"
    approve_all(journal)
    _kill_sshd(mini_lab, "tax-app01")
    started = time.monotonic()
    result = run(mini_lab, journal, "--retries", "2", "--backoff", "0.5")
    assert result.returncode == 1
    assert time.monotonic() - started > 1.5  # two retries with backoff 0.5 s and 1 s happened
    current = states(journal)
    assert current["t-tax/collection:presync"] == "failed"
    with Journal.open(journal, readonly=True) as j:
        record = j.step_records()["t-tax/collection:presync"]
    assert "tax-app01" in (record.message or "") and "unreachable" in (record.message or "")
    assert record.attempts == 3
    assert current["t-tax/collection:cutover"] == "blocked"
    assert current["t-tax/tax-dc:close"] == "blocked"
    assert current["t-hub/registry:share"] == "succeeded"  # independent work went on
    assert "retry" in result.stdout


def test_a_presync_and_cutover_in_one_job_fail_as_the_step_they_were_in(mini_lab: Path, tmp_path: Path) -> None:
    """Silent before its copy succeeded, the job failed the presync and the cutover never ran;
    silent after it, the presync is done and the cutover failed without freezing."""
    journal = tmp_path / "journal.db"
    approve_all(journal)
    service = outputs(mini_lab)["services"]["t-hub/registry"]
    target = outputs(mini_lab)["targets"]["t-hub/registry"]
    port = target.get("port") or service["port"]
    names_before = host_path(mini_lab, "office-t-hub", "/etc/hosts").read_text()

    _kill_sshd(mini_lab, "office-t-hub")
    result = run(mini_lab, journal, "--only", "t-hub/registry", "--until", "cutover", "--retries", "1",
                 "--backoff", "0.2")
    assert result.returncode == 1, result.stdout + result.stderr
    with Journal.open(journal, readonly=True) as j:
        presync, cutover = (j.step_records()[f"t-hub/registry:{kind}"] for kind in ("presync", "cutover"))
    assert presync.state == "succeeded" and (presync.stats or {}).get("with") == "t-hub/registry:cutover"
    assert_moved(mini_lab, "t-hub/registry")
    assert cutover.state == "failed" and cutover.attempts == 2  # in the job, then once more on its own
    assert "office-t-hub" in (cutover.message or "") and "unreachable" in (cutover.message or "")
    assert http_get(_source_address(mini_lab, "hub-app01"), port)  # never frozen
    with pytest.raises(OSError):
        http_get(target["address"], port, timeout=2)
    assert host_path(mini_lab, "office-t-hub", "/etc/hosts").read_text() == names_before

    _kill_sshd(mini_lab, "hub-db01")
    result = run(mini_lab, journal, "--only", "t-hub/archive", "--until", "cutover", "--retries", "0")
    assert result.returncode == 1, result.stdout + result.stderr
    with Journal.open(journal, readonly=True) as j:
        presync, cutover = (j.step_records()[f"t-hub/archive:{kind}"] for kind in ("presync", "cutover"))
    # the job's first play has every host it needs answer: both silent ones are named
    assert presync.state == "failed" and "hub-db01" in (presync.message or "")
    assert "host office-t-hub unreachable" in (presync.message or "")
    assert cutover.state == "blocked" and events(journal, "t-hub/archive:cutover", "running") == 0


# -- resume and the lock ----------------------------------------------------------------------


@pytest.mark.parametrize("kill_during", ["presync", "cutover"])
def test_sigkill_resumes_without_loss_or_repeated_cutovers(tmp_path: Path, kill_during: str) -> None:
    with lab_of(MINI, tmp_path / "lab", "fjexk", 1, scale=8.0) as lab:  # ~480 MB: presync takes a moment
        journal = tmp_path / "journal.db"
        approve_all(journal)
        proc = start_run(lab, journal)
        victim = wait_for_state(journal, kill_during)
        if kill_during == "presync":  # kill while an rsync of the job runs on its source host
            assert wait_for(lambda: tagged(journal, b"rsync")), "no rsync of the presync seen"
        # (a cutover journaled running is in its job's cutover part: its presync's copy is done)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert states(journal)[victim] == "running"
        finished = {s for s, st in states(journal).items() if st == "succeeded"}
        if kill_during == "cutover":  # killed in a job that ran its presync too, which stays done
            presync = f"{victim.split(':')[0]}:presync"
            assert presync in finished and step_stats(journal, presync)["with"] == victim

        result = run(lab, journal, "--parallel", "2")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "interrupted" in result.stdout or "rerunning" in result.stdout
        for gid in outputs(lab)["targets"]:
            assert_moved(lab, gid)
        for step_id in finished:
            assert events(journal, step_id, "running") == 1, f"{step_id} ran again after it had finished"
        for step_id, state in states(journal).items():
            assert state == "succeeded", step_id
            if step_id.endswith(":cutover"):
                assert events(journal, step_id, "succeeded") == 1
        assert fjmig("journal", "verify", "--journal", str(journal)).returncode == 0
        assert playbooks_of(tmp_path) == [], "a playbook of the killed run is still running"
        assert tagged(journal) == [], "a command of the killed run is still running on a host"
        with Journal.open(journal, readonly=True) as j:
            notes = [e for e in j.events() if e["kind"] == "stopped-leftovers"]
        assert notes and victim in notes[0]["data"]["steps"] and notes[0]["data"]["status"] == "successful"


def test_second_concurrent_run_is_refused_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    with lab_of(MINI, tmp_path / "lab", "fjexc", 1, scale=30.0) as lab:  # ~1.8 GB: presyncs take seconds
        journal = tmp_path / "journal.db"
        proc = start_run(lab, journal)
        try:
            wait_for_state(journal, "presync")
            second = run(lab, journal)
            assert second.returncode == 1
            assert "in use by another fjmig run" in second.stderr and f"pid {proc.pid}" in second.stderr
            assert "Traceback" not in second.stderr
            # Ctrl-C while a presync's rsync runs on a source host (a child of that host's sshd)
            assert wait_for(lambda: tagged(journal, b"rsync")), "no rsync of a presync seen"
        finally:
            proc.send_signal(signal.SIGINT)
            output, _ = proc.communicate(timeout=120)
        assert proc.returncode == 130, output
        assert "interrupted" in set(states(journal).values())
        assert playbooks_of(tmp_path) == [], "Ctrl-C left a playbook running"
        assert tagged(journal) == [], "Ctrl-C left a remote command of a job running"
        assert not [p for p in Path("/proc").iterdir() if p.name.isdigit() and _server_of(p)], \
            "Ctrl-C left the playbook server running"


def _server_of(proc: Path) -> bool:
    """A playbook server (execution/playbook_server.py) started by a process that is gone."""
    try:
        cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        ppid = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return False
    return b"--fjmig-playbook-server" in cmdline and ppid == 1


def test_run_needs_a_target(tmp_path: Path) -> None:
    result = fjmig("run", str(MINI), "--journal", str(tmp_path / "j.db"))
    assert result.returncode == 2 and "--lab" in result.stderr and "Traceback" not in result.stderr
    result = fjmig("run", str(MINI), "--lab", str(tmp_path / "nolab"), "--journal", str(tmp_path / "j.db"))
    assert result.returncode == 1 and "fjmig lab up" in result.stderr


def test_journal_entries_hold_no_secrets(mini_lab: Path, tmp_path: Path) -> None:
    journal = tmp_path / "journal.db"
    approve_all(journal)
    assert run(mini_lab, journal).returncode == 0
    key = (mini_lab / "id_ed25519").read_text().strip().splitlines()[1]
    dump = "\n".join(sqlite3.connect(journal).iterdump())
    assert key not in dump and "PRIVATE KEY" not in dump
    for log in (tmp_path / "logs").rglob("*"):
        if log.is_file():
            assert "PRIVATE KEY" not in log.read_text(errors="replace")
    jobs = tmp_path / "jobs" / journal.name  # a journal's own (execution.runs.jobs_dir)
    assert jobs.is_dir() and not list(jobs.glob("job-*")), "job dirs (runner's env artifacts) must be pruned"
