"""Building a lab: files, keys, seed data, links, and booting every host (launch.py).

Called by `lab_up`, which tears everything down again if anything here fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from . import artifacts, netns, seed, sshd
from .state import LabError, LabPaths, LabState, owner_tag, write_json
from .topology import EXTRANET_IF, Host, Topology

READY_TIMEOUT = 20.0


def _host_files(paths: LabPaths, topo: Topology, keys: dict[str, sshd.KeyPair], control: sshd.KeyPair,
                transfer: sshd.KeyPair, known: str) -> None:
    """Shared /root/.ssh and sshd_config; per host its /srv, /root, host key and (office) hosts file."""
    ssh_dir = paths.state_dir / "ssh"
    ssh_dir.mkdir(mode=0o700)
    node_key = sshd.keypair(f"fjmig-lab-{topo.name}-node") if topo.nodes else None
    (ssh_dir / "authorized_keys").write_text(f"{control.public}\n{transfer.public}\n"
                                             + (f"{node_key.public}\n" if node_key else ""))
    if node_key:  # the execution nodes' own key for the hosts they serve (artifacts.NODE_KEY)
        node_key.write(ssh_dir / "fjmig_node", public=False)
    os.chmod(ssh_dir / "authorized_keys", 0o600)
    transfer.write(ssh_dir / "fjmig_transfer", public=False)
    (ssh_dir / "known_hosts").write_text(known)
    paths.sshd_config.write_text(sshd.SSHD_CONFIG)
    (paths.state_dir / "hosts").mkdir()

    def one(host: Host) -> None:
        paths.host_dir(host.name).mkdir()
        paths.root(host.name).mkdir(mode=0o700)
        (paths.root(host.name) / ".ssh").mkdir(mode=0o700)
        paths.srv(host.name).mkdir()
        keys[host.name].write(paths.host_dir(host.name) / "ssh_host_ed25519_key", public=False)
        if host.role == "office" and host.dept:
            paths.hosts_file(host.name).parent.mkdir()
            paths.hosts_file(host.name).write_text(artifacts.office_hosts_file(topo, host.dept, host.name))

    with ThreadPoolExecutor(max_workers=8) as pool:  # the file system's latency, not CPU, is the cost
        list(pool.map(one, topo.hosts.values()))


def _boot_plan(paths: LabPaths, topo: Topology, hosts: list[Host]) -> dict[str, Any]:
    """What launch.py needs: per host its mounts, addresses, sshd options and services."""
    services: dict[str, list[dict[str, Any]]] = {}
    for service in topo.services.values():
        services.setdefault(service.host, []).append({"key": service.service_key, "dir": service.path,
                                                      "port": service.port})
    specs = []
    for host in hosts:
        base = paths.host_dir(host.name)
        specs.append({
            "name": host.name, "netns_path": f"/run/netns/{host.netns}", "hostname": host.hostname,
            "srv": str(paths.srv(host.name)), "root": str(paths.root(host.name)),
            "hosts_file": str(paths.hosts_file(host.name)) if host.role == "office" else None,
            "links": [{"name": EXTRANET_IF, "address": f"{host.address}/{topo.host_prefixlen}"}]
            + [{"name": link.interface, "address": link.address} for link in host.links],
            "sshd_options": sshd.sshd_options(host.address, base / "ssh_host_ed25519_key", base / "sshd.pid"),
            "services": services.get(host.name, []),
        })
    common = {"sshd": netns.find_tool("sshd"), "sshd_config": str(paths.sshd_config),
              "ssh_dir": str(paths.state_dir / "ssh"), "service_ctl": str(paths.service_ctl)}
    return {"common": common, "hosts": specs}


def _boot(paths: LabPaths, topo: Topology, hosts: list[Host]) -> None:
    """Run launch.py once for these hosts (one fork per host, no shell)."""
    if not hosts:
        return
    plan = json.dumps(_boot_plan(paths, topo, hosts))
    launcher = Path(__file__).with_name("launch.py")
    result = netns.run(["/usr/bin/python3", "-I", str(launcher)], stdin=plan, check=False)
    try:
        report: dict[str, str] = json.loads(result.stdout or "{}")
    except ValueError:
        report = {}
    failed = {host: why for host, why in report.items() if why != "ok"}
    if result.returncode != 0 or failed or len(report) != len(hosts):
        detail = "; ".join(f"{h}: {w}" for h, w in list(failed.items())[:5]) or result.stderr.strip()[-500:]
        raise LabError(f"starting the hosts failed: {detail or f'exit {result.returncode}'}")


def _wait_for_sshd(paths: LabPaths, topo: Topology) -> dict[str, int]:
    deadline = time.monotonic() + READY_TIMEOUT
    pids: dict[str, int] = {}
    while True:
        for name in topo.hosts:
            if name not in pids:
                pid = sshd.read_pid(paths.host_dir(name) / "sshd.pid")
                if pid is not None:
                    pids[name] = pid
        if len(pids) == len(topo.hosts):
            return pids
        if time.monotonic() > deadline:
            missing = sorted(set(topo.hosts) - set(pids))
            log = paths.host_dir(missing[0]) / "sshd.log"
            detail = log.read_text().strip()[-300:] if log.exists() else ""
            raise LabError(f"sshd did not start on {', '.join(missing[:5])}: {detail or 'no log'}")
        time.sleep(0.01)


def _service_pids(paths: LabPaths, topo: Topology) -> dict[int, str | None]:
    out: dict[int, str | None] = {}
    for host in {s.host for s in topo.services.values()}:
        for pid_file in (paths.root(host) / ".fjmig" / "services").glob("*.pid"):
            with contextlib.suppress(OSError, ValueError, KeyError):
                record = json.loads(pid_file.read_text())
                out[int(record["pid"])] = str(record["starttime"])
    return out


def build(paths: LabPaths, topo: Topology, plans_root: str, scale: float, record: dict[str, Any],
          milestones: list[str] | None = None, node_env: Path | None = None) -> LabState:
    started = time.monotonic()
    control, transfer = sshd.keypair(f"fjmig-lab-{topo.name}-control"), sshd.keypair(f"fjmig-lab-{topo.name}-transfer")
    keys = {name: sshd.keypair(f"{name}@fjmig-lab-{topo.name}") for name in topo.hosts}
    control.write(paths.key)
    public = {name: sshd.key_type_and_blob(pair.public) for name, pair in keys.items()}
    known = artifacts.known_hosts(topo, public)
    paths.known_hosts.write_text(known)
    paths.service_ctl.parent.mkdir(parents=True)
    shutil.copyfile(Path(__file__).with_name("service.py"), paths.service_ctl)  # hosts share the state dir
    os.chmod(paths.service_ctl, 0o755)  # noqa: S103 - a program every lab host runs
    # Overlap what waits on different things: the kernel building links, the file system taking the
    # seed data, and hosts without data booting meanwhile; the hosts that serve data boot last.
    with ThreadPoolExecutor(max_workers=2) as background:
        links = background.submit(netns.create, topo, owner_tag(paths.state_dir))
        _host_files(paths, topo, keys, control, transfer, known)
        seeding = background.submit(seed.seed, list(topo.services.values()),
                                    {h: paths.srv(h) for h in topo.hosts}, scale)
        links.result()
        serving = {s.host for s in topo.services.values()}
        _boot(paths, topo, [h for h in topo.hosts.values() if h.name not in serving])
        manifest = seeding.result()
        write_json(paths.manifest, manifest)
        _boot(paths, topo, [h for h in topo.hosts.values() if h.name in serving])
    sshd_pids = _wait_for_sshd(paths, topo)
    pids = {pid: netns.starttime(pid) for pid in sshd_pids.values()} | _service_pids(paths, topo)
    record["pids"] = {str(pid): st for pid, st in pids.items()}
    record["mount_namespaces"] = {name: os.stat(f"/proc/{pid}/ns/mnt").st_ino for name, pid in sshd_pids.items()}
    outputs = artifacts.outputs(topo, milestones)
    write_json(paths.outputs, outputs)
    inventory = artifacts.inventory(topo, key=paths.key, known_hosts=paths.known_hosts,
                                    service_ctl=paths.service_ctl, node_env=node_env)
    write_json(paths.inventory, inventory)
    record.update(status="up", seconds=round(time.monotonic() - started, 3), plans=plans_root)
    write_json(paths.record, record)
    return LabState(paths=paths, topology=topo, record=record, outputs=outputs, manifest=manifest)
