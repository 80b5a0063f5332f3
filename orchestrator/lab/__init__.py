"""The lab: a miniature Digital Fujian on one machine (network namespaces + OpenSSH per host).

`lab_up` builds hosts, networks, keys, data and services from a PlanSet and writes the files the
executor reads (docs/EXECUTION.md); `lab_down` removes exactly what it made; `lab_status` and
`lab_check` report on it. Library code: raises `LabError`, never prints or exits.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import build, netns, seed
from .node_env import ensure_node_env
from .state import LabError, LabPaths, LabState, check_state_dir, holder, live_elsewhere, read_record, write_json
from .topology import TopologyError, build_topology, from_dict, to_dict, unroutable_default

if TYPE_CHECKING:  # the plan model and paramiko are slow to import; `fjmig` starts faster without them
    from ..plans.loader import PlanSet
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

DEFAULT_STATE_DIR = Path(".fjmig/lab")
DEFAULT_SCALE_MB_PER_GB = seed.DEFAULT_SCALE_MB_PER_GB


def __getattr__(name: str) -> Any:
    if name == "HostCheck":  # lazily: importing paramiko costs more than the rest of the package
        from .check import HostCheck

        return HostCheck
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _teardown(paths: LabPaths, name: str, record: dict[str, Any] | None) -> dict[str, int]:
    """Remove namespaces, links, processes and state files of lab `name` kept in `paths`.

    When a lab of that name now runs from another state directory (ours is a stale record, e.g.
    from before a reboot), its namespaces are not ours: only our files are removed."""
    counts = {"processes": 0, "netns": 0, "links": 0}
    if not live_elsewhere(name, paths.state_dir):
        netns_names = list((record or {}).get("netns", [])) + netns.list_netns(f"{name}-")
        links = list((record or {}).get("links", [])) + netns.list_links(f"{name}-")
        pids = {int(pid): st for pid, st in (record or {}).get("pids", {}).items()}
        counts, left = netns.destroy(netns_names, links, pids)
        block = ((record or {}).get("topology") or {}).get("block")
        if block:  # routes in the root namespace (lab_disconnect's, the hidden hosts') outlive the bridge
            netns.mend_all_cuts(block)
            netns.drop_unreachable(block)
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
    record = read_record(paths)
    lab_name = (record or {}).get("name") or name
    if not lab_name:
        return {"name": None, "netns": 0, "links": 0, "processes": 0}
    counts = _teardown(paths, lab_name, record)
    return {"name": lab_name, **counts}


def lab_disconnect(state_dir: Path, host: str, *, reconnect: bool = False) -> None:
    """Cut the link between the control node and one lab host (both ways; the host still reaches
    every other host), or restore it: rehearse a control node that loses its network."""
    state = load_lab(Path(state_dir))
    if host not in state.topology.hosts:
        raise LabError(f"no host {host!r} in the lab in {state.paths.state_dir}")
    try:
        netns.cut_from_control(state.topology, host, mend=reconnect)
    except netns.NetnsError as exc:
        raise LabError(f"{'reconnect' if reconnect else 'disconnect'} {host}: {exc}") from None


def lab_up(plans: PlanSet, state_dir: Path, *, name: str = "fjmig", index: int = 0,
           scale_mb_per_gb: float = DEFAULT_SCALE_MB_PER_GB, held: bool = False, execution_nodes: bool = False,
           unroutable: list[str] | None = None) -> LabState:
    """Build the lab for `plans` in `state_dir` (rebuilding any lab left there); all or nothing.

    `held`: the lab is this process's for one run (a test, the demo): if the process dies without
    taking it down, the next lab of this name removes it instead of refusing to start.
    `execution_nodes`: an execution node per target group (node_env.py: its own ansible); the
    target groups in `unroutable` (default: the municipal data centers) get addresses the control
    node has no route to, so only their node reaches them."""
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
    if unroutable is None:
        unroutable = unroutable_default(plans) if execution_nodes else []
    try:
        topo = build_topology(plans, name, index, nodes=execution_nodes, hidden=unroutable)
    except TopologyError as exc:
        raise LabError(str(exc)) from None
    node_env = ensure_node_env() if execution_nodes else None  # (slow once; before anything is built)
    paths = LabPaths(Path(state_dir).absolute())
    check_state_dir(paths.state_dir)
    other = live_elsewhere(name, paths.state_dir)
    if other:
        raise LabError(f"a lab named {name!r} is running from {other}: take it down with "
                       f"`fjmig lab down --state-dir {other}` or choose another --name")
    previous = read_record(paths)
    if previous:
        _teardown(paths, previous["name"], previous)
    _teardown(paths, name, None)  # a crashed lab of this name
    used = [f"{iface} {address}" for iface, address in netns.addresses_in(topo.block)]
    if used:
        raise LabError(f"lab index {index} ({topo.block}) is in use here ({', '.join(used[:3])}): "
                       "choose another --index")
    netns.drop_unreachable(topo.block)  # (the index is free: a crashed lab's route to its hidden data centers)
    paths.state_dir.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "name": name, "index": index, "status": "building", "scale_mb_per_gb": scale_mb_per_gb,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "netns": [h.netns for h in topo.hosts.values()], "links": topo.links, "pids": {},
        "topology": to_dict(topo),
    }
    if held:
        record["held_by"] = holder()
    write_json(paths.record, record)  # before anything is built: a crash leaves a record to clean up
    try:
        if node_env is not None:
            record["node_env"] = str(node_env)
        state = build.build(paths, topo, str(plans.root), scale_mb_per_gb, record, sorted(plans.milestones),
                            node_env)
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
    write_json(paths.record, state.record)
    return state


def load_lab(state_dir: Path) -> LabState:
    """The lab recorded in `state_dir`, with its outputs and seed manifest parsed."""
    paths = LabPaths(Path(state_dir).absolute())
    record = read_record(paths)
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
            "held_by": (state.record.get("held_by") or {}).get("pid"), "hosts": hosts, "networks": networks}


def lab_check(state_dir: Path, *, timeout: float = 10.0, known_hosts: Path | None = None) -> list[HostCheck]:
    """SSH to every host (paramiko, RejectPolicy, the pinned known_hosts) and run `hostname`; each
    execution node runs its ansible-runner, and the hosts only it reaches answer through it."""
    from .artifacts import HOST_KNOWN_HOSTS, NODE_KEY
    from .check import NodeSpec, check_hosts, check_node

    state = load_lab(state_dir)
    topo = state.topology
    hidden = {h.name for h in topo.hosts.values() if h.target_group in topo.hidden}
    hosts = [(h.name, h.address, h.hostname) for h in topo.hosts.values() if h.name not in hidden]
    pins = known_hosts or state.paths.known_hosts
    results = check_hosts(hosts, known_hosts=pins, key=state.paths.key, timeout=timeout)
    venv = str(state.record.get("node_env") or "")
    for node, served in topo.nodes.items():
        behind = tuple((h.name, h.address, h.hostname) for h in topo.hosts.values()
                       if h.name in hidden and h.target_group == served[0])
        spec = NodeSpec(node, topo.hosts[node].address, venv, NODE_KEY, HOST_KNOWN_HOSTS, behind)
        results += check_node(spec, known_hosts=pins, key=state.paths.key, timeout=timeout)
    return results


@contextlib.contextmanager
def running_lab(plans_dir: str | Path, state_dir: str | Path, name: str, index: int,
                scale: float = DEFAULT_SCALE_MB_PER_GB) -> Iterator[LabState]:
    """A lab for the duration of a `with` block (tests, benchmarks): taken down on the way out, even
    on failure; if the process is killed instead, the next lab of this name removes it."""
    from ..plans.loader import load_plans

    plans = load_plans(plans_dir)
    try:
        yield lab_up(plans, Path(state_dir), name=name, index=index, scale_mb_per_gb=scale, held=True)
    finally:
        lab_down(Path(state_dir), name=name)
