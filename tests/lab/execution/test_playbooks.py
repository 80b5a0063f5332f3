"""The step playbooks against a real lab: namespaces, sshd, rsync, the lab's service program.

Each playbook runs with `ansible-playbook` (as the executor's ansible-runner does, with strict
host key checking) and the extra variables of docs/EXECUTION.md, built here from the lab's
outputs.json, so these tests check the contract, not the executor's reading of it. Outcomes are
read on the hosts themselves (inside their namespaces), never from the playbook's own report.
The lab is one department (fj-aic: three systems on a private network, one zombie), shared by the
whole module; tests that need a system moved run the earlier steps first (they are idempotent).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import ipaddress
import json
import os
import re
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.lab import LabState, running_lab
from tests.support import ROOT
from tests.support.processes import processes

PLAYBOOKS = ROOT / "playbooks"
PLANS = ROOT / "migration_plans"
DEPT = "fj-aic"
RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabState]:
    if os.geteuid() != 0 or not shutil.which("rsync") or not shutil.which("sshd", path="/usr/sbin:/usr/bin"):
        pytest.skip("the lab needs root, rsync and sshd")
    base = tmp_path_factory.mktemp("fjpb")
    plans = base / "plans"
    plans.mkdir()
    for name in (f"{DEPT}.yaml", "infra.yaml"):
        shutil.copy(PLANS / name, plans / name)
    MOVED.clear()
    control = control_dir(base / "state")
    try:
        with running_lab(plans, base / "state", name="fjpb", index=3) as state:
            yield state
    finally:
        # Close the SSH masters (ControlPersist) that this module's playbooks opened, and only those.
        for sock in control.iterdir():
            subprocess.run(["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "fjpb"], capture_output=True,
                           check=False, timeout=30)
        shutil.rmtree(control, ignore_errors=True)


def control_dir(state_dir: Path) -> Path:
    """This module's own ControlPath directory (short enough for unix socket paths)."""
    path = state_dir.parent / "cp"
    path.mkdir(exist_ok=True)
    return path


@dataclass
class Result:
    rc: int
    output: str

    @property
    def recap(self) -> dict[str, dict[str, int]]:
        return {m[1]: {"ok": int(m[2]), "changed": int(m[3]), "unreachable": int(m[4]), "failed": int(m[5])}
                for m in RECAP.finditer(self.output)}

    @property
    def changed(self) -> int:
        return sum(host["changed"] for host in self.recap.values())


def play(lab: LabState, playbook: str, extravars: dict[str, Any], *, check: bool = False,
         inventory: Path | None = None, verbose: bool = False) -> Result:
    """Run a playbook as the executor does: playbooks/ as the working directory, strict host keys."""
    vars_file = lab.paths.state_dir / f"vars-{playbook}.json"
    vars_file.write_text(json.dumps(extravars))
    argv = ["ansible-playbook", "-i", str(inventory or lab.paths.inventory), "-e", f"@{vars_file}", playbook]
    if check:
        argv.append("--check")
    if verbose:
        argv.append("-v")
    env = {**os.environ, "ANSIBLE_HOST_KEY_CHECKING": "True", "ANSIBLE_NOCOLOR": "True",
           "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_dir(lab.paths.state_dir))}
    proc = subprocess.run(argv, cwd=PLAYBOOKS, env=env, capture_output=True, text=True, timeout=300)
    return Result(proc.returncode, proc.stdout + proc.stderr)


def ok(result: Result) -> Result:
    assert result.rc == 0, result.output
    assert result.recap, result.output
    return result


MOVED: set[str] = set()
"""Systems this module has presynced and cut over (and not rolled back): saves rerunning both."""


def moved(lab: LabState, system: str) -> dict[str, Any]:
    """The system's extra variables, after presync and cutover (run only when not done yet)."""
    v = system_vars(lab, system)
    if system not in MOVED:
        ok(play(lab, "presync.yml", v))
        ok(play(lab, "cutover.yml", v))
        MOVED.add(system)
    return v


# --- extra variables, as docs/EXECUTION.md defines them, from the lab's outputs --------------------

def system_vars(lab: LabState, system: str) -> dict[str, Any]:
    gid = f"{DEPT}/{system}"
    target = lab.outputs["targets"][gid]
    service = lab.outputs["services"][gid]
    return {
        "fjmig_step": f"{gid}:test", "dept": DEPT, "system": system,
        "data_path": lab.manifest[gid]["path"], "source_host": lab.manifest[gid]["host"],
        "target_host": target["host"], "target_address": target["address"],
        "service_key": f"{DEPT}__{system}", "service_port": target["port"], "service_name": service["name"],
        "office_hosts": [f"office-{DEPT}"], "source_address": service["source_address"], "max_downtime_s": 10,
    }


def share_vars(lab: LabState, system: str) -> dict[str, Any]:
    v = system_vars(lab, system)
    platform = lab.outputs["platform"]
    catalog = {"department": DEPT, "system": system, "name": "企业登记系统", "function": "registration",
               "scope": "province", "frequency": "daily", "approved_by": "省发改委", "approved_on": "2012-05-01",
               "funding_source": "fiscal", "themes": ["legal-person", "credit"],
               "endpoint": f"http://{v['target_address']}:{v['service_port']}/"}
    return {**{k: v[k] for k in ("fjmig_step", "dept", "system", "data_path", "target_host")},
            "platform_host": platform["host"], "platform_address": platform["address"], "catalog": catalog}


def decommission_vars(lab: LabState, system: str) -> dict[str, Any]:
    gid = f"{DEPT}/{system}"
    archive = lab.outputs["archives"][DEPT]
    return {"fjmig_step": f"{gid}:decommission", "dept": DEPT, "system": system,
            "data_path": lab.manifest[gid]["path"], "source_host": lab.manifest[gid]["host"],
            "service_key": f"{DEPT}__{system}", "archive_host": archive["host"], "archive_address": archive["address"]}


def network_systems(lab: LabState) -> list[str]:
    net = lab.topology.networks[f"{DEPT}/aic-net"]
    return sorted(s.system for s in lab.topology.services.values()
                  if s.network == net.key and s.migrates)


def retire_vars(lab: LabState, checks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    if checks is None:
        checks = [{"name": lab.outputs["services"][f"{DEPT}/{s}"]["name"],
                   "port": lab.outputs["services"][f"{DEPT}/{s}"]["port"]} for s in network_systems(lab)]
    return {"fjmig_step": f"{DEPT}/aic-net:retire", "dept": DEPT, "network": "aic-net",
            "office_host": f"office-{DEPT}", "checks": checks}


def close_vars(lab: LabState) -> dict[str, Any]:
    hosts = sorted(h.name for h in lab.topology.hosts.values() if h.role == "source" and h.dept == DEPT)
    keys = sorted(f"{DEPT}__{s.system}" for s in lab.topology.services.values() if s.dept == DEPT)
    return {"fjmig_step": f"{DEPT}/aic-dc:close", "dept": DEPT, "datacenter": "aic-dc", "dc_hosts": hosts,
            "service_keys": keys}


# --- reading the hosts ----------------------------------------------------------------------------

def on_host(lab: LabState, host: str, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(lab.nsenter_argv(host, *command), capture_output=True, text=True, timeout=60)


def service_running(lab: LabState, host: str, key: str) -> bool:
    proc = on_host(lab, host, str(lab.paths.service_ctl), "status", key)
    assert proc.returncode in (0, 3), proc.stderr
    return proc.returncode == 0


def resolves_to(lab: LabState, name: str) -> str | None:
    """The address that the office's names file gives `name` (there must be at most one line for it)."""
    names = on_host(lab, f"office-{DEPT}", "cat", "/etc/hosts").stdout
    found = [line.split()[0] for line in names.splitlines()
             if line.strip() and not line.startswith("#") and name in line.split()[1:]]
    assert len(found) <= 1, names
    return found[0] if found else None


def http_get(lab: LabState, host: str, url: str) -> bytes:
    code = "import sys, urllib.request; sys.stdout.buffer.write(urllib.request.urlopen(sys.argv[1], timeout=5).read())"
    proc = subprocess.run(lab.nsenter_argv(host, "python3", "-c", code, url), capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def tree(directory: Path) -> dict[str, str]:
    """sha256 of every file under a directory, by relative path."""
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def manifest_tree(lab: LabState, system: str) -> dict[str, str]:
    return {rel: f["sha256"] for rel, f in lab.manifest[f"{DEPT}/{system}"]["files"].items()}


def target_dir(lab: LabState, system: str) -> Path:
    v = system_vars(lab, system)
    return lab.paths.srv(v["target_host"]) / v["data_path"].removeprefix("/srv/")


def snapshot(lab: LabState) -> dict[str, Any]:
    """Everything a playbook could change: every host's /srv and /root/.fjmig, the office's names
    file and links, and which services run where."""
    state: dict[str, Any] = {}
    for host in lab.topology.hosts:
        for base in (lab.paths.srv(host), lab.paths.root(host) / ".fjmig"):
            if base.exists():
                for p in sorted(base.rglob("*")):
                    st = p.lstat()
                    state[str(p)] = (st.st_mode, st.st_size, st.st_mtime_ns,
                                     hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None)
    office = f"office-{DEPT}"
    state["names"] = on_host(lab, office, "cat", "/etc/hosts").stdout
    state["links"] = on_host(lab, office, "ip", "-br", "link").stdout
    state["services"] = {(s.host, h, s.key): service_running(lab, h, s.key.replace("/", "__"))
                         for s in lab.topology.services.values()
                         for h in {s.host, s.target_host} if h}
    return state


# --- tests ----------------------------------------------------------------------------------------

def test_preflight_rejects_missing_variables_and_unknown_hosts(lab: LabState) -> None:
    v = system_vars(lab, "registry")
    missing = play(lab, "presync.yml", {k: v[k] for k in ("dept", "system", "data_path", "source_host")})
    assert missing.rc != 0
    assert "missing extra variables: fjmig_step, target_host, target_address" in missing.output
    unknown = play(lab, "presync.yml", {**v, "source_host": "no-such-host"})
    assert unknown.rc != 0
    assert "hosts not in the inventory: no-such-host" in unknown.output


@pytest.mark.parametrize("playbook", ["presync", "cutover", "verify", "share", "decommission", "retire", "close",
                                      "rollback"])
def test_check_mode_changes_nothing_and_does_not_fail(lab: LabState, playbook: str) -> None:
    """On systems that have not moved (credit-publicity, the zombie, the network, the data center)."""
    extravars = {
        "share": share_vars(lab, "credit-publicity"),
        "decommission": decommission_vars(lab, "annual-inspection"),
        "retire": retire_vars(lab),
        "close": close_vars(lab),
    }.get(playbook) or system_vars(lab, "credit-publicity")
    before = snapshot(lab)
    result = ok(play(lab, f"{playbook}.yml", extravars, check=True))
    assert snapshot(lab) == before
    assert not target_dir(lab, "credit-publicity").exists()
    if playbook in ("presync", "cutover", "decommission", "retire", "close"):
        assert result.changed > 0, f"check mode should report what {playbook} would change:\n{result.output}"


def test_presync_copies_every_file_and_is_idempotent(lab: LabState) -> None:
    v = system_vars(lab, "registry")
    first = ok(play(lab, "presync.yml", v))
    assert first.changed == 1
    assert tree(target_dir(lab, "registry")) == manifest_tree(lab, "registry")
    assert service_running(lab, v["source_host"], v["service_key"]), "presync must leave the source serving"
    assert ok(play(lab, "presync.yml", v)).changed == 0


def test_cutover_moves_the_service_and_the_name(lab: LabState) -> None:
    v = system_vars(lab, "registry")
    ok(play(lab, "presync.yml", v))
    # Written on the source after presync: the final delta sync must carry it.
    late = lab.paths.srv(v["source_host"]) / "registry" / "late-change.txt"
    late.write_text("written during the presync window\n")
    try:
        assert ok(play(lab, "cutover.yml", v)).changed > 0
        assert not service_running(lab, v["source_host"], v["service_key"])
        assert service_running(lab, v["target_host"], v["service_key"])
        assert resolves_to(lab, v["service_name"]) == v["target_address"]
        assert (target_dir(lab, "registry") / "late-change.txt").read_text() == late.read_text()
        body = http_get(lab, f"office-{DEPT}", f"http://{v['service_name']}:{v['service_port']}/README.txt")
        assert hashlib.sha256(body).hexdigest() == manifest_tree(lab, "registry")["README.txt"]
        assert ok(play(lab, "cutover.yml", v)).changed == 0
    finally:
        late.unlink()
        ok(play(lab, "cutover.yml", v))
    MOVED.add("registry")


def test_presync_in_parallel_streams_gives_what_one_rsync_gives(lab: LabState) -> None:
    """files/rsync_streams.py: regular files in several rsyncs at once, then the one rsync that
    sends the rest (links, empty directories) and deletes what is not on the source."""
    v = system_vars(lab, "registry")
    source = lab.paths.srv(v["source_host"]) / "streams-test"
    target = lab.paths.srv(v["target_host"]) / "streams-test"
    shutil.rmtree(source, ignore_errors=True)
    shutil.rmtree(target, ignore_errors=True)
    try:
        for n, name in enumerate(["a.bin", "deep/er/b.bin", "with space.bin", "new\nline.bin", "名字/c.bin",
                                  "-starts-with-dash.bin", "deep/small.txt"]):
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            (source / name).write_bytes(hashlib.shake_128(name.encode()).digest(4096 * (n + 1)))
        (source / "empty-dir").mkdir()
        (source / "link").symlink_to("deep/er/b.bin")
        (target / "stale").mkdir(parents=True)
        (target / "stale" / "gone.txt").write_text("not on the source: --delete removes it\n")
        streams = {**v, "data_path": "/srv/streams-test", "fjmig_transfer_streams": 3,
                   "fjmig_transfer_stream_min_mb": 0.001}
        first = ok(play(lab, "presync.yml", streams, verbose=True))
        assert first.changed == 1
        # three streams and the final rsync, each with its --stats (-v shows stdout and stdout_lines)
        assert first.output.count("Number of files:") == 2 * 4, first.output
        assert tree(target) == tree(source)
        assert os.readlink(target / "link") == "deep/er/b.bin"
        assert (target / "empty-dir").is_dir()
        assert not (target / "stale").exists()
        assert ok(play(lab, "presync.yml", streams)).changed == 0
    finally:
        shutil.rmtree(source, ignore_errors=True)
        shutil.rmtree(target, ignore_errors=True)


def _play_output(output: str, name: str) -> str:
    """What ansible-playbook printed for the play NAME (up to the next play or the recap)."""
    section = output.split(f"PLAY [{name}]", 1)[1]
    return section.split("PLAY ", 1)[0]


def test_cutover_with_its_presync_catches_up_only_after_a_long_copy(lab: LabState) -> None:
    """cutover.yml with fjmig_with_presync copies the data (the presync's play) while the target
    and every office answer in the same task (which opens the connections the freeze reuses); it
    gets ready again (a catch-up on the source, a second answer from the others) only when that
    copy took longer than fjmig_catch_up_after_s (default 30 s)."""
    v = moved(lab, "registry")
    source, hosts = v["source_host"], [v["source_host"], v["target_host"], *v["office_hosts"]]
    fresh = ok(play(lab, "cutover.yml", {**v, "fjmig_with_presync": True, "fjmig_presync_started": time.time()}))
    stale = ok(play(lab, "cutover.yml", {**v, "fjmig_with_presync": True, "fjmig_presync_started": time.time() - 60}))
    alone = ok(play(lab, "cutover.yml", v))
    assert fresh.changed == stale.changed == alone.changed == 0  # idempotent: all of it was done
    presync, getting_ready = "Presync the data to the target", "Get ready for the freeze"
    for result in (fresh, stale):
        assert all(f"ok: [{host}]" in _play_output(result.output, presync) for host in hosts)
    assert all(f"ok: [{host}]" in _play_output(result.output, getting_ready) for host in hosts
               for result in (stale, alone))
    assert not any(f"[{host}]" in _play_output(fresh.output, getting_ready) for host in hosts)
    assert not any(f"[{host}]" in _play_output(alone.output, presync) for host in hosts)
    assert stale.recap[source]["ok"] == fresh.recap[source]["ok"] + 1  # a catch-up
    assert alone.recap[source]["ok"] == fresh.recap[source]["ok"]  # a catch-up, and no copy


@pytest.mark.parametrize("with_presync", [False, True], ids=["alone", "with-presync"])
def test_cutover_does_not_freeze_when_an_office_does_not_answer(lab: LabState, with_presync: bool) -> None:
    """Every host the freeze needs answers first, in the play that catches up (or, in one job with
    the presync, in the play that copies); one that does not ends the playbook there
    (any_errors_fatal): the freeze never starts. The presync's copy still completes."""
    v = system_vars(lab, "credit-publicity")
    if with_presync:
        v = {**v, "fjmig_with_presync": True, "fjmig_presync_started": time.time()}
    inventory = lab.paths.state_dir / "inventory-silent.yml"
    data = yaml.safe_load(lab.paths.inventory.read_text())
    # an address of the lab's own block that no namespace has: nothing answers there
    data["all"]["hosts"]["office-silent"] = {"ansible_host": str(ipaddress.ip_network(lab.topology.extranet)[250]),
                                             "fjmig_names_file": "/etc/hosts"}
    inventory.write_text(yaml.safe_dump(data))
    names_before = on_host(lab, f"office-{DEPT}", "cat", "/etc/hosts").stdout
    try:
        result = play(lab, "cutover.yml", {**v, "office_hosts": [f"office-{DEPT}", "office-silent"]},
                      inventory=inventory)
        assert result.rc != 0
        assert "fatal: [office-silent]: UNREACHABLE!" in result.output
        assert result.recap["office-silent"]["unreachable"] == 1
        assert "TASK [Note when the freeze begins]" not in result.output  # ansible names the plays, runs none
        assert service_running(lab, v["source_host"], v["service_key"])
        assert not service_running(lab, v["target_host"], v["service_key"])
        assert on_host(lab, f"office-{DEPT}", "cat", "/etc/hosts").stdout == names_before
        if with_presync:  # the copy went on beside the silent office, and succeeded
            assert f"changed: [{v['source_host']}]" in _play_output(result.output, "Presync the data to the target")
            source_dir = lab.paths.srv(v["source_host"]) / v["data_path"].removeprefix("/srv/")
            assert tree(target_dir(lab, "credit-publicity")) == tree(source_dir)
    finally:
        shutil.rmtree(target_dir(lab, "credit-publicity"), ignore_errors=True)  # the catch-up's copy


def test_cutover_does_not_switch_when_the_freeze_fails(lab: LabState) -> None:
    """A failure in the freeze (here the service control program fails on the source) ends the
    playbook: the target does not start and no office is switched."""
    v = system_vars(lab, "credit-publicity")
    names_before = on_host(lab, f"office-{DEPT}", "cat", "/etc/hosts").stdout
    try:
        result = play(lab, "cutover.yml", {**v, "fjmig_service_ctl": "/bin/false"})
        assert result.rc != 0
        assert result.recap[v["source_host"]]["failed"] == 1
        assert "TASK [Start the service on its host and point the offices at it]" not in result.output
        assert not service_running(lab, v["target_host"], v["service_key"])
        assert on_host(lab, f"office-{DEPT}", "cat", "/etc/hosts").stdout == names_before
    finally:
        shutil.rmtree(target_dir(lab, "credit-publicity"), ignore_errors=True)  # the catch-up's copy


def test_verify_passes_and_fails_on_a_corrupted_file(lab: LabState) -> None:
    v = moved(lab, "registry")
    assert ok(play(lab, "verify.yml", v)).changed == 0
    victim = target_dir(lab, "registry") / "config" / "settings.json"
    original = victim.read_bytes()
    victim.write_bytes(original + b"corrupted")
    try:
        failed = play(lab, "verify.yml", v)
        assert failed.rc != 0
        assert "config/settings.json" in failed.output
    finally:
        victim.write_bytes(original)
    assert ok(play(lab, "verify.yml", v)).changed == 0
    # A file missing on the target fails it too.
    extra = target_dir(lab, "registry") / "stray.txt"
    extra.write_text("not on the source\n")
    try:
        failed = play(lab, "verify.yml", v)
        assert failed.rc != 0
        assert "stray.txt" in failed.output
    finally:
        extra.unlink()


def test_verify_fails_when_the_target_does_not_serve(lab: LabState) -> None:
    v = moved(lab, "registry")
    assert on_host(lab, v["target_host"], str(lab.paths.service_ctl), "stop", v["service_key"]).returncode == 0
    try:
        failed = play(lab, "verify.yml", v)
        assert failed.rc != 0
        assert "Connection refused" in failed.output
    finally:
        ok(play(lab, "cutover.yml", v))


def test_rollback_returns_the_service_to_the_source(lab: LabState) -> None:
    v = moved(lab, "registry")
    source_before = tree(lab.paths.srv(v["source_host"]) / "registry")
    MOVED.discard("registry")
    assert ok(play(lab, "rollback.yml", v)).changed > 0
    assert service_running(lab, v["source_host"], v["service_key"])
    assert not service_running(lab, v["target_host"], v["service_key"])
    assert resolves_to(lab, v["service_name"]) == v["source_address"]
    assert tree(lab.paths.srv(v["source_host"]) / "registry") == source_before == manifest_tree(lab, "registry")
    body = http_get(lab, f"office-{DEPT}", f"http://{v['service_name']}:{v['service_port']}/README.txt")
    assert hashlib.sha256(body).hexdigest() == manifest_tree(lab, "registry")["README.txt"]
    assert ok(play(lab, "rollback.yml", v)).changed == 0


def test_share_copies_the_data_set_and_registers_it(lab: LabState) -> None:
    moved(lab, "registry")
    s = share_vars(lab, "registry")
    assert ok(play(lab, "share.yml", s)).changed > 0
    platform = lab.paths.srv(s["platform_host"]) / "sharing"
    assert tree(platform / "data" / DEPT / "registry") == manifest_tree(lab, "registry")
    entry = json.loads((platform / "catalog" / f"{DEPT}__registry.json").read_text(encoding="utf-8"))
    assert entry == s["catalog"]
    assert ok(play(lab, "share.yml", s)).changed == 0


def test_decommission_archives_then_stops(lab: LabState) -> None:
    d = decommission_vars(lab, "annual-inspection")
    assert service_running(lab, d["source_host"], d["service_key"])
    assert ok(play(lab, "decommission.yml", d)).changed > 0
    folder = lab.paths.srv(d["archive_host"]) / "archive" / DEPT
    data = (folder / "annual-inspection.tar.gz").read_bytes()
    recorded = (folder / "annual-inspection.tar.gz.sha256").read_text().split()
    assert recorded == [hashlib.sha256(data).hexdigest(), "annual-inspection.tar.gz"]
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        files = {m.name.removeprefix("./"): hashlib.sha256(archive.extractfile(m).read()).hexdigest()  # type: ignore[union-attr]
                 for m in archive.getmembers() if m.isfile()}
    assert files == manifest_tree(lab, "annual-inspection")
    assert not service_running(lab, d["source_host"], d["service_key"])
    assert tree(lab.paths.srv(d["source_host"]) / "annual-inspection") == manifest_tree(lab, "annual-inspection")
    assert not list((lab.paths.root(d["source_host"]) / ".fjmig" / "stage").iterdir()), "staging file left behind"
    again = ok(play(lab, "decommission.yml", d))
    assert again.changed == 0
    assert (folder / "annual-inspection.tar.gz").read_bytes() == data, "the archive is not reproducible"


def test_retire_removes_the_link_and_the_office_reaches_the_moved_systems(lab: LabState) -> None:
    for system in network_systems(lab):
        moved(lab, system)
    office = f"office-{DEPT}"
    interface = "priv0"
    assert on_host(lab, office, "ip", "link", "show", "dev", interface).returncode == 0
    r = retire_vars(lab)
    assert ok(play(lab, "retire.yml", r)).changed == 1
    assert on_host(lab, office, "ip", "link", "show", "dev", interface).returncode != 0
    for check in r["checks"]:
        http_get(lab, office, f"http://{check['name']}:{check['port']}/")
    assert ok(play(lab, "retire.yml", r)).changed == 0
    # The checks can fail: a system that does not answer fails the step.
    unreachable = play(lab, "retire.yml", retire_vars(lab, [{"name": r["checks"][0]["name"], "port": 1}]))
    assert unreachable.rc != 0


def test_close_stops_what_is_left_and_marks_once(lab: LabState) -> None:
    c = close_vars(lab)
    assert ok(play(lab, "close.yml", c)).changed > 0
    markers = {}
    for host in c["dc_hosts"]:
        marker = lab.paths.root(host) / ".fjmig" / "datacenter-closed"
        markers[host] = marker.read_text()
        record = json.loads(markers[host])
        assert record["datacenter"] == "aic-dc"
        assert record["dept"] == DEPT
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record["closed_at"])
        for key in c["service_keys"]:
            assert not service_running(lab, host, key)
    assert ok(play(lab, "close.yml", c)).changed == 0
    for host in c["dc_hosts"]:
        assert (lab.paths.root(host) / ".fjmig" / "datacenter-closed").read_text() == markers[host]


def _processes_tagged(token: str) -> list[int]:
    return processes(f"FJMIG_JOB_TOKEN={token}".encode())


def test_cancel_stops_only_the_tagged_commands_on_the_hosts(lab: LabState) -> None:
    """cancel.yml kills, on the given hosts, what carries one of the given job tokens (a remote
    command outlives the SSH session that started it); nothing else, and services never."""
    v = system_vars(lab, "registry")
    host = v["source_host"]
    started = []
    for token in ("fjtest:a/x:presync", "fjtest:b/y:presync", ""):
        started.append(subprocess.Popen(lab.ssh_argv(host, "env", f"FJMIG_JOB_TOKEN={token}", "sleep", "600"),
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        deadline = time.monotonic() + 20
        while not (_processes_tagged("fjtest:a/x:presync") and _processes_tagged("fjtest:b/y:presync")):
            assert time.monotonic() < deadline, "the tagged commands did not start"
            time.sleep(0.05)
        result = ok(play(lab, "cancel.yml", {"fjmig_cancel_hosts": [host],
                                             "fjmig_cancel_tokens": ["fjtest:a/x:presync"]}))
        assert result.changed == 1
        assert _processes_tagged("fjtest:a/x:presync") == []
        assert _processes_tagged("fjtest:b/y:presync"), "a command of another job was killed"
        assert started[2].poll() is None, "an untagged command was killed"
        assert ok(play(lab, "cancel.yml", {"fjmig_cancel_hosts": [host],
                                           "fjmig_cancel_tokens": ["fjtest:a/x:presync"]})).changed == 0
    finally:
        for proc in started:
            proc.kill()
            proc.wait()
        for pid in _processes_tagged("fjtest:b/y:presync"):
            os.kill(pid, 9)


def test_step_commands_carry_the_job_token_and_services_do_not(lab: LabState) -> None:
    """What a step starts on a host is tagged with fjmig_job_token (so cancel.yml can find it);
    the service a cutover starts is not (it must outlive the job)."""
    v = {**system_vars(lab, "registry"), "fjmig_job_token": "fjtest:tagging"}
    ok(play(lab, "presync.yml", v))
    ok(play(lab, "rollback.yml", v))  # so that this cutover is the one that starts the target's service
    assert ok(play(lab, "cutover.yml", v)).changed > 0
    MOVED.add("registry")
    assert service_running(lab, v["target_host"], v["service_key"])
    pid_file = lab.paths.root(v["target_host"]) / ".fjmig" / "services" / f"{v['service_key']}.pid"
    service_pid = int(json.loads(pid_file.read_text())["pid"])
    environ = Path(f"/proc/{service_pid}/environ").read_bytes().split(b"\0")
    assert not any(e.startswith(b"FJMIG_JOB_TOKEN=fjtest") for e in environ)
    # The catch-up rsync keeps its SSH connection for the final sync in the freeze window (so at
    # full priority), under a socket named after the job: cancel.yml stops it and removes the socket.
    mux_dir = lab.paths.root(v["source_host"]) / ".fjmig" / "mux"  # the host's /root/.fjmig/mux
    tag = hashlib.sha256(b"fjtest:tagging").hexdigest()[:16]
    masters = processes(title=f"ssh: /root/.fjmig/mux/{tag}-".encode())
    assert len(masters) == 1 and os.getpriority(os.PRIO_PROCESS, masters[0]) == 0
    assert len(list(mux_dir.glob(f"{tag}-*"))) == 1
    cancelled = ok(play(lab, "cancel.yml", {"fjmig_cancel_hosts": [v["source_host"]],
                                           "fjmig_cancel_tokens": ["fjtest:tagging"]}))
    assert cancelled.changed == 1 and processes(title=f"ssh: /root/.fjmig/mux/{tag}-".encode()) == []
    assert list(mux_dir.glob(f"{tag}-*")) == []
    assert service_running(lab, v["target_host"], v["service_key"]), "cancel never stops a service"


def test_presync_runs_under_nice_on_the_source(lab: LabState) -> None:
    """The presync's rsync (and the ssh it starts) run under nice on the source, so that the service
    users still reach there comes first."""
    v = {**system_vars(lab, "registry"), "fjmig_job_token": "fjtest:nice", "data_path": "/srv/fjtest-nice",
         "fjmig_rsync_flags": ["-a", "--delete", "--bwlimit=400"]}  # ~3 s for 1.2 MB: time to look
    source = lab.paths.srv(v["source_host"]) / "fjtest-nice"
    source.mkdir()
    (source / "data.bin").write_bytes(os.urandom(1_200_000))
    try:
        with ThreadPoolExecutor(1) as pool:
            presync = pool.submit(play, lab, "presync.yml", v)
            deadline = time.monotonic() + 60
            seen: dict[int, int] = {}
            while not presync.done() and time.monotonic() < deadline and len(seen) < 2:
                for pid in _processes_tagged("fjtest:nice"):
                    with contextlib.suppress(OSError):
                        comm = Path(f"/proc/{pid}/comm").read_text().strip()
                        if comm in ("rsync", "ssh"):
                            seen[pid] = os.getpriority(os.PRIO_PROCESS, pid)
                time.sleep(0.05)
            ok(presync.result())
        assert len(seen) >= 2 and set(seen.values()) == {10}, seen  # rsync and the ssh it started
        assert (lab.paths.srv(v["target_host"]) / "fjtest-nice" / "data.bin").read_bytes() == \
            (source / "data.bin").read_bytes()
    finally:
        shutil.rmtree(source)
        shutil.rmtree(lab.paths.srv(v["target_host"]) / "fjtest-nice", ignore_errors=True)
