"""The lab for real, as root: namespaces, OpenSSH with pinned keys, private networks, data, services.

One lab (name "fjlabt", index 5) from the shipped plans is brought up once for the module and always
taken down at the end. Tests that change the lab (deleting a private link, taking it down) come last.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.lab import LabError, LabState, lab_check, lab_down, lab_status, lab_up, load_lab, running_lab
from orchestrator.lab import netns as lab_netns
from orchestrator.lab.check import check_host
from orchestrator.lab.seed import verify
from orchestrator.plans.loader import load_plans
from tests.support import PLANS, ROOT

MINI = ROOT / "tests" / "fixtures" / "mini"
NAME, INDEX = "fjlabt", 5
BIN = Path(sys.executable).parent

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root (network namespaces, mounts)"),
]


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabState]:
    with running_lab(PLANS, tmp_path_factory.mktemp("lab") / "state", NAME, INDEX) as state:
        yield state


def ssh(lab: LabState, host: str, *command: str, known_hosts: Path | None = None) -> subprocess.CompletedProcess[str]:
    argv = lab.ssh_argv(host, *command)
    if known_hosts is not None:
        argv = [a.replace(str(lab.paths.known_hosts), str(known_hosts)) for a in argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def python_on(lab: LabState, host: str, code: str) -> subprocess.CompletedProcess[str]:
    """Run a Python snippet on a lab host over SSH (the snippet travels as one argv element)."""
    return ssh(lab, host, "python3", "-c", _quote(code))


def assert_all_hosts_answer(checks: list[Any], lab: LabState) -> None:
    """Every host of the lab was checked, and answered with its pinned key."""
    assert sorted(c.host for c in checks) == sorted(lab.topology.hosts)
    assert [c for c in checks if not c.ok] == []


def _quote(code: str) -> str:
    import shlex

    return shlex.quote(code)


def fetch_code(url: str) -> str:
    return ("import hashlib, urllib.request\n"
            f"print(hashlib.sha256(urllib.request.urlopen({url!r}, timeout=5).read()).hexdigest())")


def test_every_host_answers_paramiko_with_its_pinned_key(lab: LabState) -> None:
    results = lab_check(lab.paths.state_dir)
    assert len(results) == len(lab.topology.hosts) == 107
    assert [r for r in results if not r.ok] == []


def test_every_host_answers_openssh_with_strict_host_key_checking(lab: LabState) -> None:
    hosts = list(lab.topology.hosts.values())
    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(lambda h: ssh(lab, h.name, "hostname"), hosts))
    bad = [(h.name, r.returncode, r.stderr.strip()) for h, r in zip(hosts, results, strict=True)
           if r.returncode != 0 or r.stdout.strip() != h.hostname]
    assert bad == []


def test_ansible_reaches_every_host_with_the_inventory_alone(lab: LabState, tmp_path: Path) -> None:
    inventory = yaml.safe_load(lab.paths.inventory.read_text())
    common = inventory["all"]["vars"]["ansible_ssh_common_args"]
    assert "StrictHostKeyChecking=yes" in common and str(lab.paths.known_hosts) in common
    env = {**os.environ, "ANSIBLE_HOST_KEY_CHECKING": "True", "ANSIBLE_PIPELINING": "True",
           "ANSIBLE_NOCOLOR": "1", "ANSIBLE_SSH_CONTROL_PATH_DIR": str(tmp_path / "cp"), "ANSIBLE_TIMEOUT": "60",
           "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run([str(BIN / "ansible"), "all", "-i", str(lab.paths.inventory), "-m", "ansible.builtin.ping",
                             "-f", "30", "-o"], capture_output=True, text=True, env=env, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert result.stdout.count("SUCCESS") == len(lab.topology.hosts)


def _forged_known_hosts(lab: LabState, tmp_path: Path, victim: str, *, drop: bool = False) -> Path:
    """known_hosts with `victim`'s line removed, or its key replaced by another host's key."""
    lines = lab.paths.known_hosts.read_text().splitlines()
    other_key = next(line for line in lines if victim not in line.split()[0].split(",")).split(maxsplit=1)[1]
    forged = []
    for line in lines:
        names, key = line.split(maxsplit=1)
        if victim in names.split(","):
            if drop:
                continue
            key = other_key
        forged.append(f"{names} {key}")
    path = tmp_path / "known_hosts"
    path.write_text("\n".join(forged) + "\n")
    return path


def test_a_changed_host_key_is_refused_by_paramiko_openssh_and_ansible(lab: LabState, tmp_path: Path) -> None:
    victim = "aic-db01"
    address = lab.address(victim)
    forged = _forged_known_hosts(lab, tmp_path, victim)
    result = check_host(victim, address, victim, known_hosts=forged, key=lab.paths.key)
    assert not result.ok and "CHANGED" in result.detail
    cli = subprocess.run([str(BIN / "fjmig"), "lab", "check", "--state-dir", str(lab.paths.state_dir),
                          "--known-hosts", str(forged), "--format", "json"], capture_output=True, text=True,
                         timeout=300, check=False)
    assert cli.returncode == 1
    report = json.loads(cli.stdout)
    failed = [h for h in report["hosts"] if not h["ok"]]
    assert [h["host"] for h in failed] == [victim] and "CHANGED" in failed[0]["detail"]
    openssh = ssh(lab, victim, "true", known_hosts=forged)
    assert openssh.returncode == 255 and "REMOTE HOST IDENTIFICATION HAS CHANGED" in openssh.stderr
    # ansible, even told by the environment not to check host keys: the inventory insists.
    inventory = lab.paths.inventory.read_text().replace(str(lab.paths.known_hosts), str(forged))
    (tmp_path / "inventory.json").write_text(inventory)
    # (a fresh ControlPath directory: a master connection opened earlier would skip the key check)
    env = {**os.environ, "ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_SSH_CONTROL_PATH_DIR": str(tmp_path / "cp"), "ANSIBLE_TIMEOUT": "60",
           "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    refused = subprocess.run([str(BIN / "ansible"), victim, "-i", str(tmp_path / "inventory.json"), "-m",
                              "ansible.builtin.ping", "-o"], capture_output=True, text=True, env=env, timeout=120,
                             check=False)
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0 and "UNREACHABLE" in refused.stdout, output
    assert "Host key verification failed" in output or "REMOTE HOST IDENTIFICATION HAS CHANGED" in output, output


def test_an_unknown_host_key_is_refused_not_learned(lab: LabState, tmp_path: Path) -> None:
    victim = "sharing-platform"
    forged = _forged_known_hosts(lab, tmp_path, victim, drop=True)
    before = forged.read_text()
    result = check_host(victim, lab.address(victim), victim, known_hosts=forged, key=lab.paths.key)
    assert not result.ok and "UNKNOWN" in result.detail
    openssh = ssh(lab, victim, "true", known_hosts=forged)
    assert openssh.returncode == 255 and "Host key verification failed" in openssh.stderr
    assert forged.read_text() == before


def test_hosts_have_their_own_srv_root_and_hostname(lab: LabState) -> None:
    mine = ssh(lab, "aic-db01", "ls /srv; hostname; ls /root/.ssh")
    assert mine.returncode == 0, mine.stderr
    assert mine.stdout.split() == ["registry", "aic-db01", "authorized_keys", "fjmig_transfer", "known_hosts"]
    other = ssh(lab, "aic-app01", "ls /srv")
    assert sorted(other.stdout.split()) == ["annual-inspection", "case-handling"]
    empty = ssh(lab, "fj-aic-registry", "ls -A /srv")
    assert empty.returncode == 0 and empty.stdout == ""
    perms = ssh(lab, "aic-db01", "stat -c %a /root/.ssh/fjmig_transfer")
    assert perms.stdout.strip() == "600"
    tmp = ssh(lab, "aic-db01", 'python3 -c "import tempfile; print(tempfile.mkdtemp())"')
    made = Path(tmp.stdout.strip())
    assert tmp.returncode == 0 and made.parent == Path("/run/tmp"), tmp.stderr
    assert not made.exists(), "a host's temporary files are its own, not the control node's"


def test_lab_addresses_are_ipv4_from_198_18_only(lab: LabState) -> None:
    inside = ssh(lab, "office-fj-aic", "ip -o addr show")
    assert inside.returncode == 0 and "inet6" not in inside.stdout
    addresses = [line.split()[3] for line in inside.stdout.splitlines() if " inet " in line]
    assert sorted(a.split(".")[0] for a in addresses if not a.startswith("127.")) == ["198", "198"]
    bridge = subprocess.run(["ip", "-o", "addr", "show", "dev", lab.topology.bridge], capture_output=True, text=True,
                            check=False)
    assert bridge.stdout.count(" inet ") == 1 and "inet6" not in bridge.stdout


def test_seeded_data_matches_the_manifest(lab: LabState) -> None:
    manifest = json.loads(lab.paths.manifest.read_text())
    assert set(manifest) == set(load_plans(PLANS).systems)
    assert verify(manifest, {h: lab.paths.srv(h) for h in lab.topology.hosts}) == []
    entry = manifest["fj-finance/treasury-payment"]
    listing = ssh(lab, entry["host"], f"cd {entry['path']} && find . -type f -exec sha256sum {{}} +")
    seen = {line.split()[1].removeprefix("./"): line.split()[0] for line in listing.stdout.splitlines()}
    assert seen == {path: meta["sha256"] for path, meta in entry["files"].items()}
    assert any("/" in path for path in entry["files"])  # a subdirectory too


def test_host_can_rsync_to_another_host_with_the_transfer_key(lab: LabState) -> None:
    """What presync does: source -> target directly, strict checking against the hosts' known_hosts."""
    target = lab.outputs["targets"]["fj-aic/case-handling"]
    ssh_cmd = ("ssh -i /root/.ssh/fjmig_transfer -o StrictHostKeyChecking=yes "
               "-o UserKnownHostsFile=/root/.ssh/known_hosts")
    result = ssh(lab, "aic-app01", "rsync", "-a", "-e", _quote(ssh_cmd), "/srv/case-handling/",
                 f"root@{target['address']}:/srv/case-handling/")
    assert result.returncode == 0, result.stderr
    entry = lab.manifest["fj-aic/case-handling"]
    assert verify({"k": {**entry, "host": target["host"]}}, {target["host"]: lab.paths.srv(target["host"])}) == []


OFFICE_PROBE = """
import hashlib, json, socket, subprocess, sys, urllib.request
out = {}
for name, port in json.loads(sys.argv[1]):
    address = socket.gethostbyname(name)
    route = subprocess.run(["ip", "-o", "route", "get", address], capture_output=True, text=True).stdout.split()
    body = urllib.request.urlopen(f"http://{name}:{port}/README.txt", timeout=10).read()
    out[name] = [address, route[route.index("dev") + 1], hashlib.sha256(body).hexdigest()]
print(json.dumps(out))
"""


def test_each_office_reaches_its_systems_by_name_over_its_private_network(lab: LabState) -> None:
    offices = [h for h in lab.topology.hosts.values() if h.role == "office"]
    assert len(offices) == 16

    def probe(office_dept: str) -> dict[str, list[str]]:
        services = [(s["name"], s["port"]) for k, s in lab.outputs["services"].items()
                    if k.startswith(f"{office_dept}/")]
        result = ssh(lab, f"office-{office_dept}", "python3", "-c", _quote(OFFICE_PROBE), _quote(json.dumps(services)))
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    with ThreadPoolExecutor(max_workers=8) as pool:
        seen = dict(zip(offices, pool.map(probe, [o.dept for o in offices]), strict=True))
    for office, answers in seen.items():
        links = {link.network: link.interface for link in office.links}
        for key, service in lab.topology.services.items():
            if service.dept != office.dept:
                continue
            address, device, digest = answers[service.name]
            assert address == lab.outputs["services"][key]["source_address"] == service.source_address
            assert device == (links[service.network] if service.network else "eth0"), key
            assert digest == lab.manifest[key]["files"]["README.txt"]["sha256"], key


def test_status_reports_hosts_and_networks(lab: LabState) -> None:
    status = lab_status(lab.paths.state_dir)
    assert len(status["hosts"]) == 107 and all(h["sshd"] == "running" for h in status["hosts"])
    nets = {n["name"]: n for n in status["networks"]}
    assert nets["fj-aic/aic-net"]["plan_cidr"] == "172.20.0.0/24" and nets["fj-aic/aic-net"]["present"]
    assert nets["extranet"]["lab_cidr"].startswith("198.19.64.")
    cli = subprocess.run([str(BIN / "fjmig"), "lab", "status", "--state-dir", str(lab.paths.state_dir)],
                         capture_output=True, text=True, timeout=60, check=False, env={**os.environ, "NO_COLOR": "1"})
    assert cli.returncode == 0 and "office-fj-aic" in cli.stdout and "172.20.0.0/24" in cli.stdout


def test_fjmig_svc_on_a_host_is_idempotent(lab: LabState) -> None:
    host = "fj-aic-credit-publicity"
    ctl = str(lab.paths.service_ctl)
    assert ssh(lab, host, "mkdir -p /srv/svc-test && echo served > /srv/svc-test/f.txt").returncode == 0
    assert ssh(lab, host, ctl, "status", "t__svc").returncode == 3
    start = [ctl, "start", "t__svc", "--dir", "/srv/svc-test", "--port", "9099"]
    assert ssh(lab, host, *start).stdout == "changed\n"
    assert ssh(lab, host, *start).stdout == "ok\n"
    assert ssh(lab, host, ctl, "status", "t__svc").returncode == 0
    got = python_on(lab, "sharing-platform", fetch_code(f"http://{lab.address(host)}:9099/f.txt"))
    assert got.stdout.strip() == hashlib.sha256(b"served\n").hexdigest(), got.stderr
    assert ssh(lab, host, ctl, "stop", "t__svc").stdout == "changed\n"
    assert ssh(lab, host, ctl, "stop", "t__svc").stdout == "ok\n"
    assert ssh(lab, host, ctl, "status", "t__svc").returncode == 3
    refused = python_on(lab, "sharing-platform", fetch_code(f"http://{lab.address(host)}:9099/f.txt"))
    assert refused.returncode != 0 and "refused" in refused.stderr.lower()


def test_the_sources_services_run_and_are_recorded(lab: LabState) -> None:
    status = ssh(lab, "police-sec01", str(lab.paths.service_ctl), "status", "fj-police__police-integrated")
    assert status.returncode == 0, status.stderr
    assert (lab.paths.root("police-sec01") / ".fjmig" / "services" / "fj-police__police-integrated.pid").exists()


def test_deleting_the_private_link_cuts_the_office_off(lab: LabState) -> None:
    office = "office-fj-hrss"
    links = yaml.safe_load(lab.paths.inventory.read_text())["all"]["hosts"][office]["fjmig_private_links"]
    service = lab.outputs["services"]["fj-hrss/employment"]
    url = f"http://{service['name']}:{service['port']}/README.txt"
    assert python_on(lab, office, fetch_code(url)).returncode == 0
    assert ssh(lab, office, "ip", "link", "del", links["hrss-net"]).returncode == 0
    cut = python_on(lab, office, fetch_code(url))
    assert cut.returncode != 0 and "unreachable" in cut.stderr.lower()
    # the other private network and the extranet still work
    other = lab.outputs["services"]["fj-hrss/social-insurance"]
    assert python_on(lab, office, fetch_code(f"http://{other['name']}:{other['port']}/README.txt")).returncode == 0
    host = lab.topology.hosts["hrss-app01"].address
    assert python_on(lab, office, fetch_code(f"http://{host}:{service['port']}/README.txt")).returncode == 0


def _mount_namespaces() -> dict[int, int]:
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                out[int(entry)] = os.stat(f"/proc/{entry}/ns/mnt").st_ino
    return out


def test_down_leaves_no_namespace_link_mount_or_process(lab: LabState) -> None:
    """Runs last on the module's lab: takes it down and looks for anything left."""
    record = json.loads(lab.paths.record.read_text())
    pids = {int(p): st for p, st in record["pids"].items()}
    mount_namespaces = set(record["mount_namespaces"].values())
    assert len(pids) >= 107 and len(mount_namespaces) == 107
    removed = lab_down(lab.paths.state_dir)
    assert removed["netns"] == 107 and removed["processes"] >= 107
    assert lab_netns.list_netns(f"{NAME}-") == []
    assert lab_netns.list_links(f"{NAME}-") == []
    assert [p for p, st in pids.items() if lab_netns.starttime(p) == st] == []
    assert [p for p, ns in _mount_namespaces().items() if ns in mount_namespaces] == []
    assert not lab.paths.state_dir.exists()
    assert lab_down(lab.paths.state_dir)["netns"] == 0  # idempotent
    with pytest.raises(LabError, match="no lab is up"):
        load_lab(lab.paths.state_dir)


def test_up_cleans_a_crashed_lab_and_a_failed_up_leaves_nothing(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A crashed lab's leftovers (a namespace, a link) are removed by the next `lab up`; an `up` that
    fails half-way removes what it made."""
    from orchestrator.lab import build as lab_build

    assert not lab_netns.list_netns(f"{NAME}-"), "another fjlabt lab is running"
    lab_netns.batch([f"netns add {NAME}-leftover", f"link add {NAME}-99 type bridge"])
    state = tmp_path / "state"
    with running_lab(MINI, state, NAME, INDEX) as small:
        assert f"{NAME}-leftover" not in lab_netns.list_netns(f"{NAME}-")
        assert f"{NAME}-99" not in lab_netns.list_links(f"{NAME}-")
        assert_all_hosts_answer(lab_check(small.paths.state_dir), small)
    assert lab_netns.list_netns(f"{NAME}-") == [] and not state.exists()

    def broken_boot(paths: object, topo: object, hosts: object) -> None:
        raise LabError("injected failure after the namespaces were made")

    monkeypatch.setattr(lab_build, "_boot", broken_boot)
    with pytest.raises(LabError, match="nothing left behind"):
        lab_up(load_plans(MINI), state, name=NAME, index=INDEX)
    assert lab_netns.list_netns(f"{NAME}-") == [] and lab_netns.list_links(f"{NAME}-") == []
    assert not state.exists()


def test_a_lab_whose_run_was_killed_is_removed_by_the_next_lab_of_its_name(tmp_path: Path) -> None:
    """A run (a test, the demo) killed before it could take its lab down does not block the next
    one, which removes the dead run's namespaces and daemons; a lab whose run still lives, or one
    made by `lab up` (kept until `lab down`), is refused instead."""
    name, index = "fjlabk", 4
    holder = ("import sys, time\nfrom orchestrator.lab import running_lab\n"
              "with running_lab(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])):\n"
              "    print('up', flush=True)\n    time.sleep(600)\n")
    run = subprocess.Popen([sys.executable, "-c", holder, str(MINI), str(tmp_path / "dead"), name, str(index)],
                           stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert run.stdout is not None and run.stdout.readline().strip() == "up"
        daemons = {int(pid): st for pid, st in json.loads((tmp_path / "dead" / "lab.json").read_text())["pids"].items()}
        with pytest.raises(LabError, match=f"is running from {tmp_path / 'dead'}"):
            lab_up(load_plans(MINI), tmp_path / "next", name=name, index=index)
    finally:
        run.kill()
        run.wait(timeout=30)
    assert any(lab_netns.starttime(pid) == st for pid, st in daemons.items()), "a killed run leaves its lab"
    with running_lab(MINI, tmp_path / "next", name, index) as lab:
        assert_all_hosts_answer(lab_check(lab.paths.state_dir), lab)
        assert not [pid for pid, st in daemons.items() if lab_netns.starttime(pid) == st]
    assert lab_netns.list_netns(f"{name}-") == [] and lab_netns.list_links(f"{name}-") == []

    kept = lab_up(load_plans(MINI), tmp_path / "kept", name=name, index=index)
    try:
        with pytest.raises(LabError, match="is running from"):
            lab_up(load_plans(MINI), tmp_path / "other", name=name, index=index)
        assert_all_hosts_answer(lab_check(kept.paths.state_dir), kept)
    finally:
        lab_down(kept.paths.state_dir)
    assert lab_netns.list_netns(f"{name}-") == []


AS_NOBODY = """
import codecs, importlib, os, pkgutil, sys
import orchestrator
# Import every module fjmig has, and what they import, while still root: the clone and even the
# interpreter's own library (a pyenv build under /root) may be unreadable to the user below.
for module in pkgutil.walk_packages(orchestrator.__path__, "orchestrator."):
    if not module.name.endswith(".__main__"):  # that one runs the command on import
        importlib.import_module(module.name)
codecs.lookup("utf-8-sig")  # codecs load on first use: the plan loader decodes with this one
# Now become a user without root and run the command.
os.setgroups([])
os.setresgid(65534, 65534, 65534)
os.setresuid(65534, 65534, 65534)
sys.exit(orchestrator.cli.main(sys.argv[1:]))
"""


def test_without_root_lab_up_says_so_and_builds_nothing() -> None:
    # pytest's own temporary directories sit under a root-only parent: the user below needs one it can reach
    with tempfile.TemporaryDirectory(prefix="fjmig-no-root-") as workdir:
        _lab_up_as_nobody(Path(workdir))


def _lab_up_as_nobody(tmp_path: Path) -> None:
    tmp_path.chmod(0o777)
    plans = tmp_path / "plans"
    shutil.copytree(PLANS, plans)
    for path in (plans, *plans.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    result = subprocess.run([sys.executable, "-c", AS_NOBODY, "lab", "up", str(plans), "--state-dir",
                             str(tmp_path / "state"), "--name", NAME, "--index", str(INDEX)],
                            capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
                            env={**os.environ, "NO_COLOR": "1", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)})
    assert result.returncode == 1, result.stderr
    assert "needs root" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "state").exists()
    assert lab_netns.list_netns(f"{NAME}-") == []
