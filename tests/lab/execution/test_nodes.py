"""Execution nodes on the real lab: jobs run by `ansible-runner worker` on the node of each target
group (its own venv), the municipal data center unreachable from the control node, and the faults:
a node that dies or drops off the network, SIGKILL of fjmig, Ctrl-C.

Plans: tests/fixtures/nodes (t-hub moves to the provincial cloud, t-xm to the Xiamen municipal data
center, which a lab with execution nodes hides from the control node). Labs: names fjnd*, indexes
2 and 4.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.journal import Journal
from tests.support import ROOT
from tests.support.lab_runs import (
    assert_moved,
    events,
    fjmig,
    host_path,
    http_get,
    manifest,
    outputs,
    states,
    step_stats,
    wait_for_state,
)
from tests.support.processes import processes
from tests.support.waiting import wait_for

NODES = ROOT / "tests" / "fixtures" / "nodes"
HIDDEN = "t-xm/permits"
"""The system that moves to the municipal data center the control node has no route to."""

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root (network namespaces)")]


@contextlib.contextmanager
def node_lab(state: Path, name: str, index: int, *, nodes: bool = True, scale: float | None = None) -> Iterator[Path]:
    from orchestrator.lab import lab_down, lab_up
    from orchestrator.plans.loader import load_plans

    kwargs = {} if scale is None else {"scale_mb_per_gb": scale}
    try:
        lab_up(load_plans(NODES), state, name=name, index=index, held=True, execution_nodes=nodes, **kwargs)
        yield state
    finally:
        lab_down(state, name=name)


def run(lab: Path, journal: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return fjmig("run", str(NODES), "--lab", str(lab), "--journal", str(journal), *extra)


def start_run(lab: Path, journal: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "orchestrator", "run", str(NODES), "--lab", str(lab),
                             "--journal", str(journal), *extra], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def identity(journal: Path) -> str:
    with Journal.open(journal, readonly=True) as j:
        return j.identity()


def tagged(journal: Path, command: bytes | None = None) -> list[int]:
    """Processes anywhere in the lab (nodes and hosts share this machine's pid namespace) tagged with
    this journal's job tokens: workers on nodes, what they started, commands on hosts."""
    return processes(f"FJMIG_JOB_TOKEN={identity(journal)}:".encode(), command=command)


def node_servers(journal: Path) -> list[int]:
    return processes(f"FJMIG_NODE_SERVER={identity(journal)}".encode())


def workers(journal: Path, step_id: str) -> list[int]:
    """The step's `ansible-runner worker` on whichever node: the command, or the client that has the
    node's playbook server fork it (it lives exactly as long as the worker), tagged with the job."""
    tagged = processes(f"FJMIG_JOB_TOKEN={identity(journal)}:{step_id}".encode())
    return [pid for pid in tagged if _is_worker(pid)]


def _is_worker(pid: int) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    client = any(part.endswith(b"/ansible-runner-worker") for part in argv[:3])
    command = any(part.endswith(b"/ansible-runner") for part in argv[:2]) and b"worker" in argv[:3]
    return client or command


def node_host(lab: Path, gid: str) -> str:
    target = outputs(lab)["targets"][gid]["host"]
    group = next(g for g, members in _groups(lab).items() if target in members and g != "target")
    return f"node-{group}"


def _groups(lab: Path) -> dict[str, set[str]]:
    inventory = json.loads((lab / "inventory.json").read_text())["all"]
    return {name: set(group["hosts"]) for name, group in inventory["children"].items()}


def kill_node(lab: Path, node: str) -> None:
    """The node dies: every process in its network namespace (its sshd, workers, playbook server)."""
    from orchestrator.lab import load_lab, netns

    host = load_lab(lab).topology.hosts[node]
    for pid in netns.netns_pids([host.netns]):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def node_link(lab: Path, node: str, up: bool) -> None:
    """The node drops off the network (its extranet link down), or comes back."""
    from orchestrator.lab import load_lab

    veth = load_lab(lab).topology.hosts[node].veth
    subprocess.run(["ip", "link", "set", veth, "up" if up else "down"], check=True)


def source_address(lab: Path, gid: str) -> str:
    """The extranet address of the system's source host (the service listens on all its addresses;
    its private-network address is reachable from the office only, never from here)."""
    host = manifest(lab)[gid]["host"]
    return json.loads((lab / "inventory.json").read_text())["all"]["hosts"][host]["ansible_host"]


@contextlib.contextmanager
def most_workers(journal: Path, step_id: str) -> Iterator[list[int]]:
    """While the block runs, the most `ansible-runner worker`s seen at once for the step."""
    seen = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            with contextlib.suppress(Exception):
                seen[0] = max(seen[0], len(workers(journal, step_id)))
            stop.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield seen
    finally:
        stop.set()
        sampler.join()


# -- the same migration, with and without nodes ------------------------------------------------


def test_a_migration_through_execution_nodes_moves_what_a_local_one_does(tmp_path: Path) -> None:
    moved = {}
    for label, nodes, index in (("local", False, 2), ("nodes", True, 4)):
        with node_lab(tmp_path / f"lab-{label}", f"fjnd{label[0]}", index, nodes=nodes) as lab:
            journal = tmp_path / label / "journal.db"
            result = run(lab, journal, "--format", "json")
            assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
            for gid in outputs(lab)["targets"]:
                assert_moved(lab, gid)  # every file, with the seed's sha256
                target = outputs(lab)["targets"][gid]["host"]
                root = host_path(lab, target, manifest(lab)[gid]["path"])
                moved[label, gid] = {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
                                     for p in root.rglob("*") if p.is_file()}
            started = [json.loads(line) for line in result.stdout.splitlines()
                       if line.startswith("{") and '"step-started"' in line]
            with Journal.open(journal, readonly=True) as j:
                running = [e for e in j.events() if e["kind"] == "step" and e["data"]["state"] == "running"]
                records = j.step_records()
                fallbacks = [e["data"] for e in j.events() if e["kind"] == "playbook-server-fallback"]
            assert fallbacks == [], "a job did not run through the warm playbook server (a node's, or ours)"
            assert all(r.state == "succeeded" for r in records.values())
            assert records[f"{HIDDEN}:cutover"].stats["downtime_s"] > 0  # type: ignore[index]
            assert (tmp_path / label / "logs" / "t-xm__permits--verify.log").read_text().count("PLAY [") >= 1
            if not nodes:
                assert not any("node" in e for e in started) and all("stats" not in e["data"] for e in running)
                continue
            # Each job ran on its target group's node (the event, the journal), by a worker of the
            # node's own environment; the control node has no route to the municipal data center.
            where = {e["step"]: e["node"] for e in started}
            assert where[f"{HIDDEN}:presync"] == "node-municipal-dc-xiamen"
            assert where["t-hub/registry:presync"] == "node-provincial-cloud"
            assert where["t-hub/registry:share"] == "node-provincial-cloud"
            assert {e["data"]["stats"]["node"] for e in running} == {"node-provincial-cloud",
                                                                    "node-municipal-dc-xiamen"}
            hidden = outputs(lab)["targets"][HIDDEN]["address"]
            direct = subprocess.run(["ip", "route", "get", hidden], capture_output=True, text=True, check=False)
            assert direct.returncode != 0 and "no route to host" in direct.stderr.lower(), direct.stdout + direct.stderr
            from orchestrator.lab import load_lab

            ssh = subprocess.run(load_lab(lab).ssh_argv("t-xm-permits", "hostname"), capture_output=True, text=True,
                                 timeout=30, check=False)  # the control node's own SSH: refused at once, locally
            assert ssh.returncode == 255 and "No route to host" in ssh.stderr, ssh.stderr
            check = fjmig("lab", "check", "--state-dir", str(lab), "--format", "json")
            assert check.returncode == 0, check.stdout
            through = {h["host"]: h["detail"] for h in json.loads(check.stdout)["hosts"]}
            assert "through node-municipal-dc-xiamen" in through["t-xm-permits"]
            assert "ansible-runner 2.4" in through["node-municipal-dc-xiamen (ansible-runner worker)"]
            again = run(lab, tmp_path / "nodes-again" / "journal.db")  # idempotent through nodes too
            assert again.returncode == 0, again.stdout[-2000:]
            assert not tagged(journal) and not node_servers(journal), "a worker or node server outlived the run"
    assert moved["local", HIDDEN] == moved["nodes", HIDDEN]
    assert moved["local", "t-hub/registry"] == moved["nodes", "t-hub/registry"]


def test_a_run_without_a_node_for_a_job_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with node_lab(tmp_path / "lab", "fjndr", 2) as lab:
        inventory = json.loads((lab / "inventory.json").read_text())
        node = inventory["all"]["hosts"]["node-municipal-dc-xiamen"]
        node["fjmig_node_serves"] = ["municipal-dc-xiamen"]  # no longer reaches t-xm's data center
        (tmp_path / "inventory.json").write_text(json.dumps(inventory))
        journal = tmp_path / "journal.db"
        result = fjmig("run", str(NODES), "--inventory", str(tmp_path / "inventory.json"), "--outputs",
                       str(lab / "outputs.json"), "--journal", str(journal), "--ignore-windows")
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert f"{HIDDEN}:presync: hosts xm-app01, t-xm-permits; no node reaches xm-app01" in result.stderr
        assert "nothing was started" in result.stderr
        with Journal.open(journal, readonly=True) as j:
            assert j.runs() == [] and j.step_records() == {}  # no run began, no job ran


# -- faults ------------------------------------------------------------------------------------


def test_a_node_that_drops_off_the_network_interrupts_its_job_which_reruns_once(tmp_path: Path) -> None:
    with node_lab(tmp_path / "lab", "fjndn", 4, scale=20.0) as lab:  # 600 MB for t-xm/permits
        journal = tmp_path / "journal.db"
        proc = start_run(lab, journal, "--only", HIDDEN, "--until", "presync", "--backoff", "0.5", "--retries", "5")
        node = node_host(lab, HIDDEN)
        try:
            wait_for_state(journal, "presync")
            assert wait_for(lambda: tagged(journal, b"rsync")), "no rsync of the presync seen"
            with most_workers(journal, f"{HIDDEN}:presync") as seen:
                node_link(lab, node, up=False)
                wait_for_state(journal, "presync", "interrupted")
                node_link(lab, node, up=True)
                output, _ = proc.communicate(timeout=300)
        finally:
            node_link(lab, node, up=True)
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, output
        assert f"execution node {node} was lost" in output
        entry = manifest(lab)[HIDDEN]
        target = outputs(lab)["targets"][HIDDEN]["host"]
        for rel, meta in entry["files"].items():
            got = host_path(lab, target, entry["path"]) / rel
            assert hashlib.sha256(got.read_bytes()).hexdigest() == meta["sha256"]
        with Journal.open(journal, readonly=True) as j:
            record = j.step_records()[f"{HIDDEN}:presync"]
            interrupted = [e for e in j.events() if e["kind"] == "step" and e["data"]["state"] == "interrupted"]
            lost = [e for e in j.events() if e["kind"] == "node-lost"]
        assert record.state == "succeeded" and record.attempts >= 2
        assert interrupted and f"execution node {node} lost" in interrupted[0]["data"]["message"]
        assert lost and lost[0]["data"]["node"] == node
        assert seen[0] == 1, "two workers ran the same step at once"
        assert not tagged(journal) and not node_servers(journal)
        status = json.loads(fjmig("status", str(NODES), "--journal", str(journal), "--format", "json").stdout)
        assert any(n["kind"] == "node-lost" and n["node"] == node for n in status["notes"])
        # a rollback runs through the node too (the target is one the control node cannot reach)
        rolled = fjmig("rollback", HIDDEN, str(NODES), "--lab", str(lab), "--journal", str(journal))
        assert rolled.returncode == 0, rolled.stdout + rolled.stderr
        first = sorted(entry["files"])[0]
        answer = http_get(source_address(lab, HIDDEN), outputs(lab)["services"][HIDDEN]["port"], "/" + first)
        assert hashlib.sha256(answer).hexdigest() == entry["files"][first]["sha256"]


def test_a_cutover_whose_node_dies_before_the_switch_leaves_the_service_on_the_source(tmp_path: Path) -> None:
    with node_lab(tmp_path / "lab", "fjndd", 2, scale=20.0) as lab:
        journal = tmp_path / "journal.db"
        for first in (run(lab, journal, "--only", "t-hub/registry", "--until", "verify"),  # what it waits for
                      run(lab, journal, "--only", HIDDEN, "--until", "presync")):
            assert first.returncode == 0, first.stdout + first.stderr
        # Changes since the presync: the cutover's catch-up (before the freeze) copies them for a while.
        entry = manifest(lab)[HIDDEN]
        biggest = max(entry["files"], key=lambda rel: entry["files"][rel]["size"])
        source_file = host_path(lab, entry["host"], entry["path"]) / biggest
        source_file.write_bytes(os.urandom(source_file.stat().st_size))
        names_before = host_path(lab, "office-t-xm", "/etc/hosts").read_text()
        service = outputs(lab)["services"][HIDDEN]
        target = outputs(lab)["targets"][HIDDEN]
        node = node_host(lab, HIDDEN)
        proc = start_run(lab, journal, "--only", HIDDEN, "--until", "cutover", "--backoff", "0.2", "--retries", "1")
        try:
            wait_for_state(journal, "cutover")
            assert wait_for(lambda: tagged(journal, b"rsync")), "no catch-up rsync of the cutover seen"
            kill_node(lab, node)
            output, _ = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 1, output
        with Journal.open(journal, readonly=True) as j:
            cutover = j.step_records()[f"{HIDDEN}:cutover"]
        assert cutover.state == "failed" and f"execution node {node}" in (cutover.message or "")
        assert events(journal, f"{HIDDEN}:cutover", "interrupted") == 1  # lost (interrupted), then not reachable
        assert f"execution node {node} was lost" in output
        # never frozen, never switched: the source serves, the office still points at it
        first_file = sorted(entry["files"])[0]
        answer = http_get(source_address(lab, HIDDEN), service["port"], "/" + first_file)
        assert hashlib.sha256(answer).hexdigest() == entry["files"][first_file]["sha256"]
        assert host_path(lab, "office-t-xm", "/etc/hosts").read_text() == names_before
        assert target["address"] not in names_before
        assert states(journal)[f"{HIDDEN}:presync"] == "succeeded"


def test_sigkill_then_resume_stops_the_remote_workers_first_and_reruns_nothing_finished(tmp_path: Path) -> None:
    with node_lab(tmp_path / "lab", "fjndk", 4, scale=20.0) as lab:
        journal = tmp_path / "journal.db"
        proc = start_run(lab, journal, "--parallel", "2")
        victim = wait_for_state(journal, "presync")
        assert wait_for(lambda: tagged(journal, b"rsync")), "no rsync of a presync seen"
        assert wait_for(lambda: workers(journal, victim)), "no worker for the presync seen"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert states(journal)[victim] == "running"
        finished = {s for s, st in states(journal).items() if st == "succeeded"}
        with most_workers(journal, victim) as seen:
            result = run(lab, journal, "--parallel", "2")
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        for gid in outputs(lab)["targets"]:
            assert_moved(lab, gid)
        for step_id in finished:
            assert events(journal, step_id, "running") == 1, f"{step_id} ran again after it had finished"
        assert all(state == "succeeded" for state in states(journal).values())
        assert seen[0] <= 1, "a second worker ran the step beside the killed run's"
        with Journal.open(journal, readonly=True) as j:
            notes = [e for e in j.events() if e["kind"] == "stopped-leftovers"]
        assert notes and victim in notes[0]["data"]["steps"] and notes[0]["data"]["status"] == "successful"
        assert not tagged(journal), "a worker or command of the killed run is still running"
        assert not node_servers(journal)
        if victim.endswith(":presync") and "with" in step_stats(journal, victim):
            assert events(journal, victim, "succeeded") == 1


def test_ctrl_c_stops_the_jobs_on_the_nodes(tmp_path: Path) -> None:
    with node_lab(tmp_path / "lab", "fjndc", 2, scale=30.0) as lab:
        journal = tmp_path / "journal.db"
        proc = start_run(lab, journal, "--parallel", "2")
        try:
            running = wait_for_state(journal, "presync")
            assert wait_for(lambda: tagged(journal, b"rsync")), "no rsync of a presync seen"
            assert wait_for(lambda: workers(journal, running)), "no worker seen on a node"
            # where each running job runs, while it runs
            status = json.loads(fjmig("status", str(NODES), "--journal", str(journal), "--format", "json").stdout)
            dept = status["departments"][running.split("/")[0]]
            assert dept["where"][running] == node_host(lab, running.split(":")[0])
        finally:
            proc.send_signal(signal.SIGINT)
            output, _ = proc.communicate(timeout=120)
        assert proc.returncode == 130, output
        assert "interrupted" in set(states(journal).values())
        assert wait_for(lambda: not tagged(journal), timeout=10), "Ctrl-C left a worker or a command running"
        assert wait_for(lambda: not node_servers(journal), timeout=10), "Ctrl-C left a node's playbook server"
