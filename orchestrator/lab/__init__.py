"""The lab: a miniature Digital Fujian on one machine (network namespaces + OpenSSH per host).

`lab_up` builds hosts, networks, keys, data and services from a PlanSet and writes the files the
executor reads (docs/EXECUTION.md); `lab_down` removes exactly what it made; `lab_status` and
`lab_check` report on it. Library code: raises `LabError`, never prints or exits.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from . import artifacts, netns, seed, sshd
from .topology import EXTRANET_IF, Host, Topology, TopologyError, build_topology, from_dict, to_dict

if TYPE_CHECKING:  # the plan model and paramiko are slow to import; `fjmig` starts faster without them
    from ..plan import PlanSet
    from .check import HostCheck

__all__ = [
    "DEFAULT_SCALE_MB_PER_GB",
    "DEFAULT_STATE_DIR",
    "HostCheck",
    "LabError",
    "LabPaths",
    "LabState",
    "lab_check",
    "lab_down",
    "lab_status",
    "lab_up",
    "load_lab",
    "running_lab",
]

try:  # libyaml's emitter is several times faster; both are the safe dumper
    from yaml import CSafeDumper as _Dumper
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeDumper as _Dumper  # type: ignore[assignment]

DEFAULT_STATE_DIR = Path(".fjmig/lab")
DEFAULT_SCALE_MB_PER_GB = seed.DEFAULT_SCALE_MB_PER_GB
FORBIDDEN_STATE_ROOTS = (Path("/root"), Path("/srv"), Path("/run"), Path("/etc"))
READY_TIMEOUT = 20.0
_SAFE_PATH = re.compile(r"^[A-Za-z0-9._/+-]{1,200}$")


def __getattr__(name: str) -> Any:
    if name == "HostCheck":  # lazily: importing paramiko costs more than the rest of the package
        from .check import HostCheck

        return HostCheck
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class LabError(Exception):
    """The lab cannot be built, found or removed; the message says why and what to do."""


@dataclass(frozen=True)
class LabPaths:
    """Where a lab keeps its files (all under the state directory)."""

    state_dir: Path

    @property
    def inventory(self) -> Path:
        return self.state_dir / "inventory.yml"

    @property
    def outputs(self) -> Path:
        return self.state_dir / "outputs.json"

    @property
    def known_hosts(self) -> Path:
        return self.state_dir / "known_hosts"

    @property
    def key(self) -> Path:
        return self.state_dir / "id_ed25519"

    @property
    def sshd_config(self) -> Path:
        return self.state_dir / "sshd_config"

    @property
    def manifest(self) -> Path:
        return self.state_dir / "seed-manifest.json"

    @property
    def service_ctl(self) -> Path:
        return self.state_dir / "bin" / "fjmig-svc"

    @property
    def record(self) -> Path:
        return self.state_dir / "lab.json"

    def host_dir(self, host: str) -> Path:
        return self.state_dir / "hosts" / host

    def srv(self, host: str) -> Path:
        """The host's /srv as seen from the control node."""
        return self.host_dir(host) / "srv"

    def root(self, host: str) -> Path:
        """The host's /root as seen from the control node."""
        return self.host_dir(host) / "root"

    def hosts_file(self, host: str) -> Path:
        """An office's /etc/hosts as seen from the control node (bind-mounted over the office's)."""
        return self.host_dir(host) / "etc" / "hosts"

    def created(self) -> list[Path]:
        """Every file and directory `lab up` creates in the state directory."""
        names = ["inventory.yml", "outputs.json", "known_hosts", "id_ed25519", "id_ed25519.pub", "sshd_config",
                 "seed-manifest.json", "bin", "ssh", "hosts", "lab.json"]
        return [self.state_dir / n for n in names]


@dataclass
class LabState:
    """A lab that is up: its paths, its topology and the parsed outputs/manifest."""

    paths: LabPaths
    topology: Topology
    record: dict[str, Any]
    outputs: dict[str, Any] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.topology.name

    @property
    def index(self) -> int:
        return self.topology.index

    @property
    def seconds(self) -> float | None:
        return self.record.get("seconds")

    def address(self, host: str) -> str:
        return self.topology.hosts[host].address

    def sshd_pid(self, host: str) -> int | None:
        return sshd.read_pid(self.paths.host_dir(host) / "sshd.pid")

    def ssh_argv(self, host: str, *command: str) -> list[str]:
        """OpenSSH to a lab host with the control key and strict checking of the pinned key."""
        return ["ssh", "-i", str(self.paths.key), "-o", "StrictHostKeyChecking=yes",
                "-o", f"UserKnownHostsFile={self.paths.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
                "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
                f"root@{self.address(host)}", "--", *command]

    def nsenter_argv(self, host: str, *command: str) -> list[str]:
        """Run a command inside a host's namespaces (network, mount, UTS) without SSH."""
        pid = self.sshd_pid(host)
        if pid is None:
            raise LabError(f"host {host}: sshd is not running")
        return ["nsenter", "-t", str(pid), "-m", "-n", "-u", *command]


def _record(paths: LabPaths) -> dict[str, Any] | None:
    try:
        return json.loads(paths.record.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise LabError(f"{paths.record}: unreadable lab state ({exc}); remove it after checking "
                       "`ip netns list`") from None


def _write_json(path: Path, data: Any, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _owner_tag(state_dir: Path) -> str:
    text = str(state_dir)
    return f"fjmig:{text}" if _SAFE_PATH.match(text) else f"fjmig:#{hashlib.sha256(text.encode()).hexdigest()[:24]}"


def _bridge_owner(name: str) -> str | None:
    """The state-directory tag on a lab's extranet bridge, if that bridge exists."""
    result = netns.run(["ip", "-o", "link", "show", "dev", f"{name}-x"], check=False)
    if result.returncode != 0:
        return None
    match = re.search(r"alias (\S+)", result.stdout)
    return match.group(1) if match else ""


def _live_elsewhere(name: str, state_dir: Path) -> str | None:
    """The state directory of a running lab of this name other than ours (None if none or crashed)."""
    owner = _bridge_owner(name)
    if not owner or owner == _owner_tag(state_dir):
        return None
    if owner.startswith("fjmig:#"):
        return "(a state directory with an unusual path)"
    other = Path(owner.removeprefix("fjmig:"))
    try:
        record = json.loads((other / "lab.json").read_text())
    except (OSError, ValueError):
        return None  # its state is gone: what is left is a crash's debris
    return str(other) if record.get("name") == name else None


def _check_state_dir(state_dir: Path) -> None:
    for root in FORBIDDEN_STATE_ROOTS:
        if state_dir == root or root in state_dir.parents:
            raise LabError(f"state directory {state_dir} is under {root}, which every lab host mounts its own "
                           "copy of; choose another --state-dir")
    if state_dir == Path("/"):
        raise LabError("the state directory cannot be /")
    if re.search(r"[\s'\"\\#]", str(state_dir)):
        raise LabError(f"state directory {str(state_dir)!r}: no spaces, quotes, '\\' or '#' please "
                       "(its paths go into sshd options and ssh arguments, which cannot quote them)")


def _teardown(paths: LabPaths, name: str, record: dict[str, Any] | None) -> dict[str, int]:
    """Remove namespaces, links, processes and state files of lab `name` kept in `paths`.

    When a lab of that name now runs from another state directory (ours is a stale record, e.g.
    from before a reboot), its namespaces are not ours: only our files are removed."""
    counts = {"processes": 0, "netns": 0, "links": 0}
    if not _live_elsewhere(name, paths.state_dir):
        netns_names = list((record or {}).get("netns", [])) + netns.list_netns(f"{name}-")
        links = list((record or {}).get("links", [])) + netns.list_links(f"{name}-")
        pids = {int(pid): st for pid, st in (record or {}).get("pids", {}).items()}
        counts, left = netns.destroy(netns_names, links, pids)
        if left:
            raise LabError(f"could not remove {', '.join(left[:10])}{' ...' if len(left) > 10 else ''}")
    for path in paths.created():
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        paths.state_dir.rmdir()  # only if nothing else is in it
    return counts


def lab_down(state_dir: Path, name: str | None = None) -> dict[str, Any]:
    """Remove what `lab up` made for this state directory (idempotent); returns what was removed.

    Without a recorded lab, `name` selects a crashed lab's namespaces and links, but never those of
    a lab of that name that is running from another state directory."""
    if os.geteuid() != 0:
        raise LabError("the lab needs root to take down namespaces: run it as root")
    paths = LabPaths(Path(state_dir).absolute())
    record = _record(paths)
    lab_name = (record or {}).get("name") or name
    if not lab_name:
        return {"name": None, "netns": 0, "links": 0, "processes": 0}
    counts = _teardown(paths, lab_name, record)
    return {"name": lab_name, **counts}


def _host_files(paths: LabPaths, topo: Topology, keys: dict[str, sshd.KeyPair], control: sshd.KeyPair,
                transfer: sshd.KeyPair, known: str) -> None:
    """Shared /root/.ssh and sshd_config; per host its /srv, /root, host key and (office) hosts file."""
    ssh_dir = paths.state_dir / "ssh"
    ssh_dir.mkdir(mode=0o700)
    (ssh_dir / "authorized_keys").write_text(f"{control.public}\n{transfer.public}\n")
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
            "links": [{"name": EXTRANET_IF, "address": f"{host.address}/{topo.prefixlen}"}]
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


def _build(paths: LabPaths, topo: Topology, plans_root: str, scale: float, record: dict[str, Any]) -> LabState:
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
        links = background.submit(netns.create, topo, _owner_tag(paths.state_dir))
        _host_files(paths, topo, keys, control, transfer, known)
        seeding = background.submit(seed.seed, list(topo.services.values()),
                                    {h: paths.srv(h) for h in topo.hosts}, scale)
        links.result()
        serving = {s.host for s in topo.services.values()}
        _boot(paths, topo, [h for h in topo.hosts.values() if h.name not in serving])
        manifest = seeding.result()
        _write_json(paths.manifest, manifest)
        _boot(paths, topo, [h for h in topo.hosts.values() if h.name in serving])
    sshd_pids = _wait_for_sshd(paths, topo)
    pids = {pid: netns.starttime(pid) for pid in sshd_pids.values()} | _service_pids(paths, topo)
    record["pids"] = {str(pid): st for pid, st in pids.items()}
    record["mount_namespaces"] = {name: os.stat(f"/proc/{pid}/ns/mnt").st_ino for name, pid in sshd_pids.items()}
    outputs = artifacts.outputs(topo)
    _write_json(paths.outputs, outputs)
    inventory = artifacts.inventory(topo, key=paths.key, known_hosts=paths.known_hosts,
                                    service_ctl=paths.service_ctl)
    paths.inventory.write_text("# fjmig lab inventory (generated by `fjmig lab up`)\n"
                               + yaml.dump(inventory, Dumper=_Dumper, sort_keys=False, allow_unicode=True))
    record.update(status="up", seconds=round(time.monotonic() - started, 3), plans=plans_root)
    _write_json(paths.record, record)
    return LabState(paths=paths, topology=topo, record=record, outputs=outputs, manifest=manifest)


def lab_up(plans: PlanSet, state_dir: Path, *, name: str = "fjmig", index: int = 0,
           scale_mb_per_gb: float = DEFAULT_SCALE_MB_PER_GB) -> LabState:
    """Build the lab for `plans` in `state_dir` (rebuilding any lab left there); all or nothing."""
    started = time.monotonic()
    problems = netns.missing_requirements()
    if problems:
        raise LabError("cannot build the lab: " + "; ".join(problems))
    if plans.findings:
        first = plans.findings[0]
        raise LabError(f"the plans do not load ({len(plans.findings)} problem(s), first: {first.file}: "
                       f"{first.message}); run `fjmig validate` and fix them first")
    if not scale_mb_per_gb > 0:
        raise LabError(f"scale must be positive, not {scale_mb_per_gb}")
    try:
        topo = build_topology(plans, name, index)
    except TopologyError as exc:
        raise LabError(str(exc)) from None
    paths = LabPaths(Path(state_dir).absolute())
    _check_state_dir(paths.state_dir)
    other = _live_elsewhere(name, paths.state_dir)
    if other:
        raise LabError(f"a lab named {name!r} is running from {other}: take it down with "
                       f"`fjmig lab down --state-dir {other}` or choose another --name")
    previous = _record(paths)
    if previous:
        _teardown(paths, previous["name"], previous)
    _teardown(paths, name, None)  # a crashed lab of this name
    used = [f"{iface} {address}" for iface, address in netns.addresses_in(topo.block)]
    if used:
        raise LabError(f"lab index {index} ({topo.block}) is in use here ({', '.join(used[:3])}): "
                       "choose another --index")
    paths.state_dir.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "name": name, "index": index, "status": "building", "scale_mb_per_gb": scale_mb_per_gb,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "netns": [h.netns for h in topo.hosts.values()], "links": topo.links, "pids": {},
        "topology": to_dict(topo),
    }
    _write_json(paths.record, record)  # before anything is built: a crash leaves a record to clean up
    try:
        state = _build(paths, topo, str(plans.root), scale_mb_per_gb, record)
    except BaseException as exc:
        cleanup = ""
        try:
            _teardown(paths, name, record)
        except (LabError, OSError) as again:
            cleanup = f" (and cleaning up failed too: {again})"
        if isinstance(exc, (LabError, netns.NetnsError, OSError)):
            raise LabError(f"lab up failed, nothing left behind{cleanup}: {exc}") from None
        if isinstance(exc, Exception):
            raise LabError(f"lab up failed ({type(exc).__name__}), nothing left behind{cleanup}: {exc}") from exc
        raise
    state.record["seconds"] = round(time.monotonic() - started, 3)
    _write_json(paths.record, state.record)
    return state


def load_lab(state_dir: Path) -> LabState:
    """The lab recorded in `state_dir`, with its outputs and seed manifest parsed."""
    paths = LabPaths(Path(state_dir).absolute())
    record = _record(paths)
    if record is not None and record.get("status") != "up":
        raise LabError(f"the lab in {paths.state_dir} was not completely built (interrupted?): "
                       "run `fjmig lab down` or `fjmig lab up` again")
    if record is None:
        raise LabError(f"no lab is up in {paths.state_dir}: run `fjmig lab up`")
    try:
        outputs = json.loads(paths.outputs.read_text())
        manifest = json.loads(paths.manifest.read_text())
    except (OSError, ValueError) as exc:
        raise LabError(f"the lab in {paths.state_dir} is incomplete ({exc}): run `fjmig lab up` again") from None
    return LabState(paths=paths, topology=from_dict(record["topology"]), record=record, outputs=outputs,
                    manifest=manifest)


def _sshd_running(state: LabState, host: str) -> bool:
    pid = state.sshd_pid(host)
    if pid is None or netns.starttime(pid) is None:
        return False
    recorded = state.record.get("pids", {}).get(str(pid))
    return recorded is None or recorded == netns.starttime(pid)


def lab_status(state_dir: Path) -> dict[str, Any]:
    """Hosts (role, groups, addresses, sshd state) and networks (plan CIDR -> lab block), JSON-able."""
    state = load_lab(state_dir)
    topo = state.topology
    present_links = set(netns.list_links(f"{topo.name}-"))
    present_ns = set(netns.list_netns(f"{topo.name}-"))
    hosts = []
    for host in topo.hosts.values():
        hosts.append({
            "name": host.name, "role": host.role, "groups": list(host.groups), "address": host.address,
            "netns": host.netns, "netns_present": host.netns in present_ns,
            "sshd": "running" if _sshd_running(state, host.name) else "stopped",
            "private": [{"network": link.network, "interface": link.interface, "address": link.address}
                        for link in host.links],
        })
    networks = [{"name": "extranet", "plan_cidr": None, "lab_cidr": topo.extranet, "bridge": topo.bridge,
                 "present": topo.bridge in present_links, "members": len(topo.hosts),
                 "control_address": topo.control_address}]
    for net in topo.networks.values():
        networks.append({"name": net.key, "plan_cidr": net.plan_cidr, "lab_cidr": net.lab_cidr, "bridge": net.bridge,
                         "present": net.bridge in present_links, "members": list(net.members),
                         "migrate_to": net.migrate_to})
    return {"name": topo.name, "index": topo.index, "block": topo.block, "state_dir": str(state.paths.state_dir),
            "created_at": state.record.get("created_at"), "seconds": state.record.get("seconds"),
            "inventory": str(state.paths.inventory), "outputs": str(state.paths.outputs),
            "known_hosts": str(state.paths.known_hosts), "key": str(state.paths.key),
            "hosts": hosts, "networks": networks}


def lab_check(state_dir: Path, *, timeout: float = 10.0, known_hosts: Path | None = None) -> list[HostCheck]:
    """SSH to every host (paramiko, RejectPolicy, the pinned known_hosts) and run `hostname`."""
    from .check import check_hosts

    state = load_lab(state_dir)
    hosts = [(h.name, h.address, h.hostname) for h in state.topology.hosts.values()]
    return check_hosts(hosts, known_hosts=known_hosts or state.paths.known_hosts, key=state.paths.key,
                       timeout=timeout)


@contextlib.contextmanager
def running_lab(plans_dir: str | Path, state_dir: str | Path, name: str, index: int,
                scale: float = DEFAULT_SCALE_MB_PER_GB) -> Iterator[LabState]:
    """A lab for the duration of a `with` block (tests): always taken down, even on failure."""
    from ..plan import load_plans

    plans = load_plans(plans_dir)
    try:
        yield lab_up(plans, Path(state_dir), name=name, index=index, scale_mb_per_gb=scale)
    finally:
        lab_down(Path(state_dir), name=name)
