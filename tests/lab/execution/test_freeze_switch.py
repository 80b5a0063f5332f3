"""A cutover never leaves users without service: the freeze's dead-man's switch on the lab.

Each test runs a presync and its cutover in one job (`fjmig run --only t-hub/registry --until
cutover`) and writes a large file on the source while the presync copies, so that the freeze's
final sync has seconds of work. The freeze is then held where a test needs it by stopping that
final rsync on the source (SIGSTOP: the commit cannot happen before the sync ends), never by
sleeping and hoping. Outcomes are read on the hosts: the office's view of the service, the
service's process on the source, the files on the target, the journal.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.journal import Journal
from orchestrator.lab import LabState, lab_disconnect, load_lab
from tests.support import MINI
from tests.support.lab_runs import approve_all, fjmig, host_path, lab_of, start_run, tagged
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root (network namespaces)")]

GID, KEY = "t-hub/registry", "t-hub__registry"
MAX_DOWNTIME_S = 8
STATE = f"/run/fjmig/freeze/{KEY}"


@pytest.fixture
def plans(tmp_path: Path) -> Path:
    """The mini plans, with registry's cutover allowed MAX_DOWNTIME_S seconds of downtime."""
    target = tmp_path / "plans"
    shutil.copytree(MINI, target)
    text = (target / "t-hub.yaml").read_text(encoding="utf-8")
    anchor = "    depends_on: [infra:provincial-cloud]\n"
    text = text.replace(anchor, f"{anchor}    cutover: {{max_downtime: PT{MAX_DOWNTIME_S}S}}\n", 1)
    (target / "t-hub.yaml").write_text(text, encoding="utf-8")
    return target


@pytest.fixture
def lab(plans: Path, tmp_path: Path) -> Iterator[LabState]:
    with lab_of(plans, tmp_path / "lab", "fjfz", 1, scale=8.0) as state_dir:
        yield load_lab(state_dir)


def on(lab: LabState, host: str, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """A command inside a lab host's namespaces, without SSH (which a test may have cut)."""
    return subprocess.run(lab.nsenter_argv(host, *argv), capture_output=True, text=True, timeout=timeout,
                          check=False)


def source(lab: LabState) -> str:
    return lab.manifest[GID]["host"]


def serving(lab: LabState) -> bool:
    """The service runs on the source (the lab's service program says so)."""
    return on(lab, source(lab), str(lab.paths.service_ctl), "status", KEY).returncode == 0


def office_reaches_the_source(lab: LabState) -> bool:
    """The office reaches the system by its name, and its name is still the source's address."""
    service = lab.outputs["services"][GID]
    office = "office-t-hub"
    hosts = on(lab, office, "cat", "/etc/hosts").stdout.split()
    if service["name"] not in hosts or hosts[hosts.index(service["name"]) - 1] != service["source_address"]:
        return False
    code = f"import urllib.request; urllib.request.urlopen('http://{service['name']}:{service['port']}/', timeout=1)"
    return on(lab, office, "python3", "-c", code).returncode == 0


def freeze_record(lab: LabState) -> dict:
    """The source's record of its armed freeze: armed.json and the decision, if any."""
    listing = on(lab, source(lab), "sh", "-c", f"cat {STATE}/*/armed.json; echo; cat {STATE}/*/decision/by")
    lines = [line for line in listing.stdout.splitlines() if line.strip()]
    record = json.loads(lines[0]) if lines and lines[0].startswith("{") else {}
    record["decision"] = next((line.split()[0] for line in lines[1:]), None)
    return record


def watchdogs(lab: LabState) -> list[int]:
    """The source's freeze watchdogs (their command line names the freeze's state directory; the
    host is told apart from other labs' by its network namespace)."""
    netns = os.stat(f"/run/netns/{lab.topology.hosts[source(lab)].netns}").st_ino
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if STATE in (proc / "cmdline").read_bytes().decode(errors="replace").split("\0") and \
                    os.stat(proc / "ns" / "net").st_ino == netns:
                found.append(int(proc.name))
    return found


def tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def assert_target_has_the_source_data(lab: LabState) -> None:
    path = lab.manifest[GID]["path"]
    want = tree(host_path(lab.paths.state_dir, source(lab), path))
    target = lab.outputs["targets"][GID]["host"]
    assert "late.bin" in want and tree(host_path(lab.paths.state_dir, target, path)) == want


def hold_the_final_sync(lab: LabState, journal: Path, proc: subprocess.Popen[str]) -> int:
    """Run until the freeze's final sync copies, and stop it there (SIGSTOP): the service is
    stopped on the source and nothing is decided yet. Returns the stopped rsync's pid."""
    path = lab.manifest[GID]["path"]
    data = host_path(lab.paths.state_dir, source(lab), path)
    copied = host_path(lab.paths.state_dir, lab.outputs["targets"][GID]["host"], path)
    # The presync's copy has built its file list once files arrive on the target: what is written
    # on the source from then on is the freeze's final sync's to copy.
    assert wait_for(lambda: tagged(journal, b"rsync") and copied.is_dir() and any(copied.iterdir()), 120), \
        "the presync's copy never started"
    with open(data / "late.bin", "wb") as handle:
        for _ in range(48):
            handle.write(os.urandom(1 << 22))
    assert wait_for(lambda: watchdogs(lab), 120), f"the freeze was never armed: {proc.poll()}"
    final: list[int] = []

    def final_sync() -> list[int]:
        final[:] = tagged(journal, b"rsync")
        return final

    assert wait_for(final_sync, 60), "no final sync seen"
    for pid in final:
        os.kill(pid, signal.SIGSTOP)
    assert not serving(lab) and freeze_record(lab)["decision"] is None
    return final[0]


def run_cutover(lab: LabState, journal: Path, plans: Path) -> subprocess.Popen[str]:
    return start_run(lab.paths.state_dir, journal, "--only", GID, "--until", "cutover", "--parallel", "1",
                     plans=plans)


def resume(lab: LabState, journal: Path, plans: Path) -> subprocess.CompletedProcess[str]:
    return fjmig("run", str(plans), "--lab", str(lab.paths.state_dir), "--journal", str(journal), "--only", GID,
                 "--until", "cutover")


def cutover_events(journal: Path) -> list[dict]:
    with Journal.open(journal, readonly=True) as opened:
        return [e["data"] for e in opened.events(f"{GID}:cutover")]


def test_sigkill_during_the_freeze_gives_the_service_back_to_the_source(lab: LabState, plans: Path,
                                                                      tmp_path: Path) -> None:
    """The kill just before the commit: the source's watchdog restores the service by itself; the
    resumed run learns it, journals it, and completes the move."""
    journal = tmp_path / "journal.db"
    approve_all(journal, plans)
    proc = run_cutover(lab, journal, plans)
    rsync = hold_the_final_sync(lab, journal, proc)
    deadline = freeze_record(lab)["deadline"]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    os.kill(rsync, signal.SIGCONT)  # a remote command outlives the run that started it
    assert wait_for(lambda: office_reaches_the_source(lab), MAX_DOWNTIME_S + 10)
    assert time.time() <= deadline + 2, "the office saw the service again later than the deadline + 2 s"
    assert serving(lab) and freeze_record(lab)["decision"] == "aborted"
    assert wait_for(lambda: not watchdogs(lab), 10), "the watchdog outlived its decision"

    resumed = resume(lab, journal, plans)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    settled = [e for e in cutover_events(journal)
               if e["state"] == "interrupted" and "restored" in e.get("message", "")]
    assert settled and "by the host" in settled[0]["message"]
    assert settled[0]["stats"]["aborted_downtime_s"] > 0
    assert cutover_events(journal)[-1]["state"] == "succeeded"
    assert_target_has_the_source_data(lab)
    assert fjmig("journal", "verify", "--journal", str(journal)).returncode == 0
    status = json.loads(fjmig("status", str(plans), "--journal", str(journal), "--format", "json").stdout)
    downtime = status["departments"]["t-hub"]["downtime_s"]["registry"]
    assert downtime >= settled[0]["stats"]["aborted_downtime_s"]
    assert not watchdogs(lab) and on(lab, source(lab), "ls", STATE).stdout.strip() == ""


def test_a_lost_link_to_the_source_during_the_freeze(lab: LabState, plans: Path, tmp_path: Path) -> None:
    """The control node's link to the source drops mid-freeze (the office's does not): the source
    gives the service back by itself; when the link returns, the run reports the aborted cutover,
    and a rerun completes it."""
    journal = tmp_path / "journal.db"
    approve_all(journal, plans)
    proc = run_cutover(lab, journal, plans)
    rsync = hold_the_final_sync(lab, journal, proc)
    deadline = freeze_record(lab)["deadline"]
    lab_disconnect(lab.paths.state_dir, source(lab))
    try:
        os.kill(rsync, signal.SIGCONT)
        assert wait_for(lambda: office_reaches_the_source(lab), MAX_DOWNTIME_S + 10)
        assert time.time() <= deadline + 2
    finally:
        lab_disconnect(lab.paths.state_dir, source(lab), reconnect=True)
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1, output
    assert "restored on the source by the host" in output
    assert [e for e in cutover_events(journal) if e["state"] == "interrupted"]
    assert freeze_record(lab)["decision"] == "aborted" and serving(lab)

    rerun = resume(lab, journal, plans)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert_target_has_the_source_data(lab)
    assert not office_reaches_the_source(lab)  # the office's name now points at the target


def test_sigkill_just_after_the_commit_never_restarts_the_source(lab: LabState, plans: Path,
                                                                 tmp_path: Path) -> None:
    """The kill just after the commit: the switch owns the outcome, the watchdog restarts nothing;
    the resumed run learns the commit and completes the cutover."""
    journal = tmp_path / "journal.db"
    approve_all(journal, plans)
    proc = run_cutover(lab, journal, plans)
    rsync = hold_the_final_sync(lab, journal, proc)
    deadline = freeze_record(lab)["deadline"]
    cut = [lab.outputs["targets"][GID]["host"], "office-t-hub"]  # the switch cannot reach them: it waits
    for host in cut:
        lab_disconnect(lab.paths.state_dir, host)
    try:
        os.kill(rsync, signal.SIGCONT)
        assert wait_for(lambda: freeze_record(lab)["decision"] == "committed", 60), "the switch never committed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert wait_for(lambda: not watchdogs(lab), 10), "the commit left its watchdog running"
        assert wait_for(lambda: time.time() > deadline + 1, MAX_DOWNTIME_S + 10)
        assert not serving(lab), "the source's service was started again after the switch committed"
    finally:
        for host in cut:
            lab_disconnect(lab.paths.state_dir, host, reconnect=True)

    resumed = resume(lab, journal, plans)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    committed = [e for e in cutover_events(journal) if "switch committed" in e.get("message", "")]
    assert committed and committed[0]["state"] == "interrupted"
    assert cutover_events(journal)[-1]["state"] == "succeeded"
    assert_target_has_the_source_data(lab)
    assert not office_reaches_the_source(lab) and not serving(lab)
