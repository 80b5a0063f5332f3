"""The lab's pure parts: topology and address plan, generated files, seed data, fjmig-svc locally."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.request
from ipaddress import IPv4Interface, IPv4Network
from pathlib import Path

import pytest

from orchestrator.lab import artifacts, seed
from orchestrator.lab.netns import missing_requirements
from orchestrator.lab.topology import (
    LAB_SPACE,
    TopologyError,
    build_topology,
    from_dict,
    lab_block,
    to_dict,
)
from orchestrator.plans.loader import load_plans
from tests.support import PLANS, ROOT

SERVICE = ROOT / "orchestrator" / "lab" / "service.py"


@pytest.fixture(scope="module")
def plans():
    loaded = load_plans(PLANS)
    assert not loaded.findings
    return loaded


@pytest.fixture(scope="module")
def topo(plans):
    return build_topology(plans, "fjlabt", 5)


def test_one_host_per_dc_host_moving_system_archive_office_and_platform(plans, topo):
    dc_hosts = {h for p in plans.departments.values() for h in (p.datacenter.hosts if p.datacenter else [])}
    movers = {f"{d}-{s.id}" for d, p in plans.departments.items() for s in p.systems if s.migrates}
    offices = {f"office-{d}" for d, p in plans.departments.items() if p.private_networks}
    by_role = {}
    for host in topo.hosts.values():
        by_role.setdefault(host.role, set()).add(host.name)
    assert by_role["source"] == dc_hosts
    assert by_role["target"] == movers
    assert by_role["office"] == offices
    assert by_role["platform"] == {"sharing-platform"}
    assert by_role["archive"] == {"archive-provincial-cloud", "archive-social-enterprise-cloud",
                                  "archive-municipal-dc-fuzhou", "archive-municipal-dc-pingtan",
                                  "archive-municipal-dc-xiamen"}
    assert topo.hosts["fz-aic-market-registry"].groups == ("municipal-dc-fuzhou", "target")
    assert topo.hosts["aic-db01"].groups == ("fj-aic", "source")


def test_every_address_is_in_the_labs_own_block_and_disjoint(topo):
    block = IPv4Network(topo.block)
    assert block == lab_block(5) and block.subnet_of(LAB_SPACE)
    extranet = IPv4Network(topo.extranet)
    assert extranet == next(block.subnets(new_prefix=20))
    addresses = [topo.control_address] + [h.address for h in topo.hosts.values()]
    assert len(set(addresses)) == len(addresses)
    assert all(IPv4Interface(f"{a}/32").ip in extranet for a in addresses)
    lab_blocks = [IPv4Network(n.lab_cidr) for n in topo.networks.values()]
    for i, net in enumerate(lab_blocks):
        assert net.subnet_of(block) and not net.overlaps(extranet)
        assert all(not net.overlaps(other) for other in lab_blocks[i + 1:])
    for host in topo.hosts.values():
        for link in host.links:
            assert IPv4Interface(link.address).network == IPv4Network(topo.networks[link.network].lab_cidr)


def test_lab_indexes_are_disjoint():
    blocks = [lab_block(i) for i in range(8)]
    assert all(not a.overlaps(b) for i, a in enumerate(blocks) for b in blocks[i + 1:])
    with pytest.raises(TopologyError):
        lab_block(8)


def test_interface_names_fit_linux_and_are_unique(topo):
    links = topo.links
    assert len(set(links)) == len(links)
    assert all(len(name) <= 15 and name.startswith("fjlabt-") for name in links)
    for host in topo.hosts.values():
        inner = ["eth0"] + [link.interface for link in host.links]
        assert len(set(inner)) == len(inner) and all(len(n) <= 15 for n in inner)


def test_private_networks_join_office_and_the_systems_hosts(plans, topo):
    net = topo.networks["fj-aic/aic-net"]
    assert net.plan_cidr == "172.20.0.0/24" and net.members[0] == "office-fj-aic"
    assert set(net.members[1:]) == {"aic-db01", "aic-app02", "aic-app01"}
    registry = topo.services["fj-aic/registry"]
    db01 = topo.hosts["aic-db01"]
    assert registry.source_address == db01.links[0].address.split("/")[0]
    assert registry.port == 8000 and registry.name == "registry.fj-aic.fjmig.lab"
    # a system on no private network is reached over the extranet
    his = topo.services["fj-hospital/his"]
    assert his.network is None and his.source_address == topo.hosts["hosp-db01"].address
    assert topo.services["fj-aic/annual-inspection"].port == 8003


def test_inventory_follows_the_contract(topo, tmp_path):
    inv = artifacts.inventory(topo, key=tmp_path / "id_ed25519", known_hosts=tmp_path / "known_hosts",
                              service_ctl=tmp_path / "bin" / "fjmig-svc")["all"]
    variables = inv["vars"]
    assert variables["fjmig_transfer_key"] == "/root/.ssh/fjmig_transfer"
    assert variables["fjmig_known_hosts"] == "/root/.ssh/known_hosts"
    assert variables["fjmig_service_ctl"] == str(tmp_path / "bin" / "fjmig-svc")
    assert "StrictHostKeyChecking=yes" in variables["ansible_ssh_common_args"]
    assert str(tmp_path / "known_hosts") in variables["ansible_ssh_common_args"]
    assert variables["ansible_host_key_checking"] is True
    assert set(inv["hosts"]) == set(topo.hosts)
    assert all(h["ansible_host"] == topo.hosts[n].address for n, h in inv["hosts"].items())
    children = inv["children"]
    for group in ("source", "target", "archive", "office", "platform", "fj-aic", "provincial-cloud",
                  "municipal-dc-xiamen"):
        assert children[group]["hosts"], group
    assert set(children["fj-aic"]["hosts"]) == {"aic-app01", "aic-app02", "aic-db01", "office-fj-aic"}
    office = inv["hosts"]["office-fj-hrss"]
    assert office["fjmig_private_links"] == {"hrss-net": "priv0", "hrss-si-net": "priv1"}
    assert office["fjmig_names_file"] == "/etc/hosts"


def test_outputs_follow_the_contract(plans, topo):
    out = artifacts.outputs(topo)
    movers = {k for k, (_, s) in plans.systems.items() if s.migrates}
    assert set(out["targets"]) == movers
    target = out["targets"]["fj-aic/registry"]
    assert target == {"host": "fj-aic-registry", "address": topo.hosts["fj-aic-registry"].address, "port": 8000}
    assert set(out["archives"]) == set(plans.departments)
    assert out["archives"]["xm-transport"]["host"] == "archive-municipal-dc-xiamen"
    assert out["platform"]["host"] == "sharing-platform"
    assert set(out["services"]) == set(plans.systems)
    assert "fj-police/police-integrated" in out["services"] and "fj-police/police-integrated" not in out["targets"]


def test_known_hosts_and_office_hosts_file(topo):
    keys = {name: f"ssh-ed25519 KEY{n}" for n, name in enumerate(topo.hosts)}
    lines = artifacts.known_hosts(topo, keys).splitlines()
    assert len(lines) == len(topo.hosts)
    first = lines[0].split()
    assert first[0].split(",")[:2] == [topo.hosts["sharing-platform"].address, "sharing-platform"]
    hosts_file = artifacts.office_hosts_file(topo, "fj-aic", "office-fj-aic")
    assert f"{topo.services['fj-aic/registry'].source_address}\tregistry.fj-aic.fjmig.lab" in hosts_file


def test_topology_round_trips_through_json(topo):
    assert from_dict(json.loads(json.dumps(to_dict(topo)))) == topo


def test_bad_names_paths_and_clashes_are_refused(plans_copy):
    with pytest.raises(TopologyError, match="lab name"):
        build_topology(load_plans(PLANS), "Bad-Name", 0)
    text = (plans_copy / "fj-aic.yaml").read_text()
    (plans_copy / "fj-aic.yaml").write_text(text.replace("path: /srv/registry", "path: /var/lib/registry"))
    with pytest.raises(TopologyError, match="outside /srv"):
        build_topology(load_plans(plans_copy), "fjlabt", 5)
    (plans_copy / "fj-aic.yaml").write_text(text.replace("path: /srv/case-handling", "path: /srv/annual-inspection"))
    with pytest.raises(TopologyError, match="overlap on host aic-app01"):
        build_topology(load_plans(plans_copy), "fjlabt", 5)
    (plans_copy / "fj-aic.yaml").write_text(text)
    audit = (plans_copy / "fj-audit.yaml").read_text()
    (plans_copy / "fj-audit.yaml").write_text(audit.replace("audit-app01", "aic-app01"))
    with pytest.raises(TopologyError, match="used twice"):
        build_topology(load_plans(plans_copy), "fjlabt", 5)


def test_seed_is_deterministic_and_scaled(topo, tmp_path):
    registry = topo.services["fj-aic/registry"]
    first = seed.system_files(registry, 0.001)
    assert first == seed.system_files(registry, 0.001)
    assert first != seed.system_files(topo.services["fj-aic/case-handling"], 0.001)
    records = sum(len(v) for k, v in first.items() if k.startswith("records/"))
    assert records == int(registry.size_gb * 0.001 * 1_000_000)
    assert "config/settings.json" in first and "README.txt" in first
    roots = {h: tmp_path / h for h in topo.hosts}
    services = [s for s in topo.services.values() if s.dept == "fj-aic"]
    manifest = seed.seed(services, roots, 0.001)
    assert manifest["fj-aic/registry"]["host"] == "aic-db01"
    assert manifest["fj-aic/registry"]["path"] == "/srv/registry"
    assert seed.verify(manifest, roots) == []
    (roots["aic-db01"] / "registry" / "README.txt").write_text("tampered\n")
    assert seed.verify(manifest, roots) == ["fj-aic/registry: README.txt differs from the manifest"]


def test_missing_tools_name_the_packages_to_install(tmp_path):
    problems = " ".join(missing_requirements(path=str(tmp_path)))
    assert "apt-get install openssh-server rsync iproute2" in problems
    assert "ip" in problems and "sshd" in problems and "rsync" in problems


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _svc(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SERVICE), *args], capture_output=True, text=True, env=env, timeout=30)


def test_fjmig_svc_start_stop_status_are_idempotent(tmp_path):
    env = {**os.environ, "FJMIG_SVC_DIR": str(tmp_path / "run")}
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "a.txt").write_text("hello\n")
    port = str(_free_port())
    try:
        assert _svc(env, "status", "d__s").returncode == 3
        first = _svc(env, "start", "d__s", "--dir", str(data), "--port", port)
        assert (first.returncode, first.stdout) == (0, "changed\n"), first.stderr
        again = _svc(env, "start", "d__s", "--dir", str(data), "--port", port)
        assert (again.returncode, again.stdout) == (0, "ok\n")
        assert _svc(env, "status", "d__s").returncode == 0
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/sub/a.txt", timeout=10) as reply:
            assert reply.read() == b"hello\n"
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/../../etc/passwd", timeout=10)
        busy = _svc(env, "start", "d__t", "--dir", str(data), "--port", port)
        assert busy.returncode == 1 and "cannot listen" in busy.stderr
        pid = json.loads((tmp_path / "run" / "d__s.pid").read_text())["pid"]
        stopped = _svc(env, "stop", "d__s")
        assert (stopped.returncode, stopped.stdout) == (0, "changed\n")
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:3]
        assert _svc(env, "stop", "d__s").stdout == "ok\n"
        assert _svc(env, "status", "d__s").returncode == 3
    finally:
        _svc(env, "stop", "d__s")


def test_fjmig_svc_never_kills_a_process_that_reused_the_pid(tmp_path):
    """A stale pid file naming a live process that is not the service: status says stopped, stop kills nothing."""
    run = tmp_path / "run"
    run.mkdir()
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        (run / "d__s.pid").write_text(json.dumps({"pid": sleeper.pid, "starttime": "1", "port": 1, "key": "d__s"}))
        env = {**os.environ, "FJMIG_SVC_DIR": str(run)}
        assert _svc(env, "status", "d__s").returncode == 3
        assert _svc(env, "stop", "d__s").stdout == "ok\n"
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()


def test_fjmig_svc_bad_command_lines(tmp_path):
    env = {**os.environ, "FJMIG_SVC_DIR": str(tmp_path / "run")}
    assert _svc(env, "start", "Bad Key", "--dir", "/tmp", "--port", "1").returncode == 2
    assert _svc(env, "start", "d__s").returncode == 2
    missing = _svc(env, "start", "d__s", "--dir", str(tmp_path / "nope"), "--port", str(_free_port()))
    assert missing.returncode == 1 and "no such directory" in missing.stderr
    assert shutil.which("python3")


def test_execution_nodes_serve_their_target_group_and_hide_municipal_data_centers(plans):
    from orchestrator.lab.topology import NODES_GROUP, unroutable_default

    hidden = unroutable_default(plans)
    assert hidden and all(group.startswith("municipal-dc-") for group in hidden)
    topo = build_topology(plans, "fjlabn", 5, nodes=True, hidden=hidden)
    groups = sorted({p.target_group for p in plans.departments.values()})
    assert sorted(topo.nodes) == [f"node-{g}" for g in groups]
    for group in groups:
        served = topo.nodes[f"node-{group}"]
        assert served[0] == group and served[-1] == "platform"
        assert set(served[1:-1]) == {p.id for p in plans.departments.values() if p.target_group == group}
        assert topo.hosts[f"node-{group}"].groups == (NODES_GROUP, "node")
    block = IPv4Network(topo.hidden_block)
    extranet = IPv4Network(topo.extranet)
    assert block.supernet(new_prefix=block.prefixlen - 1) == extranet.supernet(new_prefix=extranet.prefixlen - 1)
    for host in topo.hosts.values():
        behind = host.target_group in hidden
        assert (IPv4Interface(host.address).ip in block) is behind, host.name
        assert (IPv4Interface(host.address).ip in extranet) is not behind, host.name
    assert topo.host_prefixlen == extranet.prefixlen - 1  # hosts reach both halves; the control node one
    private = [IPv4Network(n.lab_cidr) for n in topo.networks.values()]
    assert not any(net.overlaps(block) for net in private)
    assert from_dict(json.loads(json.dumps(to_dict(topo)))) == topo
    inventory = artifacts.inventory(topo, key=Path("/k"), known_hosts=Path("/kh"), service_ctl=Path("/svc"),
                                    node_env=Path("/venv"))
    node = inventory["all"]["hosts"][f"node-{groups[0]}"]
    assert node["fjmig_node_serves"] == topo.nodes[f"node-{groups[0]}"] and node["fjmig_node_venv"] == "/venv"
    assert node["fjmig_node_key"] == artifacts.NODE_KEY
    assert inventory["all"]["vars"]["fjmig_control_known_hosts"] == "/kh"
    assert list(inventory["all"]["children"][NODES_GROUP]["hosts"]) == sorted(topo.nodes)


def test_a_hidden_data_center_needs_nodes_and_a_department_moving_there(plans):
    with pytest.raises(TopologyError, match="need execution nodes"):
        build_topology(plans, "fjlabn", 5, hidden=["municipal-dc-xiamen"])
    with pytest.raises(TopologyError, match="municipal-dc-nowhere: no department moves there"):
        build_topology(plans, "fjlabn", 5, nodes=True, hidden=["municipal-dc-nowhere"])
    plain = build_topology(plans, "fjlabn", 5)
    assert plain == build_topology(plans, "fjlabn", 5, nodes=False, hidden=[])  # the lab without nodes: unchanged
    assert not plain.nodes and plain.hidden_block is None and plain.host_prefixlen == plain.prefixlen
