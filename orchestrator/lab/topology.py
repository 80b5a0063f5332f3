"""What the lab builds, computed from the plans alone: hosts, networks, addresses, services.

Pure (no root, no processes), so that the address plan and the naming can be unit tested and so
that `lab down` can recompute names from the recorded state. Every address comes from the lab's
own /18 of 198.18.0.0/15 (selected by `index`): the extranet from its first /20, one block per
plan private network from the rest. Linux interface names are at most 15 characters, so root
namespace links get short generated names `<lab name>-<n>` and are recorded.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import TYPE_CHECKING

from ..errors import FjmigError
from ..plans.naming import service_key, service_name, service_port, target_host

if TYPE_CHECKING:
    from ..plans.loader import PlanSet
    from ..plans.model import DepartmentPlan, System

LAB_SPACE = IPv4Network("198.18.0.0/15")
LAB_NAME_PATTERN = r"^[a-z][a-z0-9]{0,7}$"
MAX_INDEX = 7
EXTRANET_IF = "eth0"
HOSTNAME_MAX = 64
ROLES = ("source", "target", "archive", "office", "platform", "node")
NODES_GROUP = "fjmig_execution_nodes"
"""The inventory group of execution nodes (execution/nodes.py)."""


class TopologyError(FjmigError):
    """The plans cannot be turned into a lab (a name clash, a data path outside /srv, ...)."""


@dataclass(frozen=True)
class PrivateLink:
    """One host's end of a private network: the interface inside the host and its address."""

    network: str
    """`<dept>/<network id>`"""
    interface: str
    address: str
    veth: str
    """the root-namespace end, attached to the network's bridge"""


@dataclass(frozen=True)
class Host:
    name: str
    role: str
    groups: tuple[str, ...]
    address: str
    netns: str
    veth: str
    dept: str | None = None
    target_group: str | None = None
    links: tuple[PrivateLink, ...] = ()

    @property
    def hostname(self) -> str:
        """UTS host names are at most 64 bytes."""
        return self.name[:HOSTNAME_MAX]


@dataclass(frozen=True)
class PrivateNet:
    key: str
    dept: str
    id: str
    plan_cidr: str
    lab_cidr: str
    bridge: str
    migrate_to: str
    members: tuple[str, ...]
    """host names: the office first, then the data-center hosts of the network's systems"""


@dataclass(frozen=True)
class Service:
    """A system with data on a source host: what fjmig-svc serves and where offices reach it."""

    key: str
    """`<dept>/<system>`"""
    dept: str
    system: str
    host: str
    path: str
    port: int
    name: str
    source_address: str
    network: str | None
    status: str
    classification: str
    migrates: bool
    target_host: str | None
    size_gb: float = 0.0

    @property
    def service_key(self) -> str:
        return service_key(self.dept, self.system)


@dataclass
class Topology:
    name: str
    index: int
    block: str
    extranet: str
    control_address: str
    bridge: str
    hosts: dict[str, Host] = field(default_factory=dict)
    networks: dict[str, PrivateNet] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)
    archives: dict[str, str] = field(default_factory=dict)
    """dept -> archive host name"""
    nodes: dict[str, list[str]] = field(default_factory=dict)
    """Execution node host -> the groups it serves (empty: no nodes)."""
    hidden: list[str] = field(default_factory=list)
    """Target groups whose hosts the control node has no route to (reached through their node)."""
    hidden_block: str | None = None
    """Where their addresses come from: the /20 after the extranet's, on the same bridge."""

    @property
    def host_prefixlen(self) -> int:
        """The prefix of every host's extranet address: the extranet's, or with hidden data centers
        the /19 that holds both (hosts reach each other; the control node only the extranet)."""
        return self.prefixlen - 1 if self.hidden_block else self.prefixlen

    @property
    def prefixlen(self) -> int:
        return IPv4Network(self.extranet).prefixlen

    @property
    def links(self) -> list[str]:
        """Every root-namespace link the lab creates (bridges last, so veths go first on delete)."""
        out = [h.veth for h in self.hosts.values()]
        out += [link.veth for h in self.hosts.values() for link in h.links]
        return out + [n.bridge for n in self.networks.values()] + [self.bridge]

    def office_names(self, dept: str) -> dict[str, str]:
        """Service name -> address that the department's office reaches it at before the move."""
        return {s.name: s.source_address for s in self.services.values() if s.dept == dept}


def check_name(name: str) -> None:
    if not re.match(LAB_NAME_PATTERN, name):
        raise TopologyError(f"lab name {name!r} must be 1-8 lower-case letters or digits, starting with a letter "
                            "(it prefixes namespace and interface names, which Linux limits to 15 characters)")


def lab_block(index: int) -> IPv4Network:
    """The index-th /18 of 198.18.0.0/15: each of 8 labs on a machine gets its own."""
    if not 0 <= index <= MAX_INDEX:
        raise TopologyError(f"lab index {index} must be between 0 and {MAX_INDEX}")
    return list(LAB_SPACE.subnets(new_prefix=18))[index]


def _srv_path(key: str, system: System) -> str:
    path = system.data.path
    if not path.startswith("/srv/"):
        raise TopologyError(f"{key}: data.path {path} is outside /srv; each lab host has its own /srv only")
    return path


def _check_paths(services: list[tuple[str, str, str]]) -> None:
    """Two systems on one host must not share or nest their data paths (their data would mix)."""
    by_host: dict[str, list[tuple[str, str]]] = {}
    for key, host, path in services:
        by_host.setdefault(host, []).append((key, path))
    for host, entries in by_host.items():
        for i, (key_a, path_a) in enumerate(entries):
            for key_b, path_b in entries[i + 1:]:
                if path_a == path_b or path_a.startswith(path_b + "/") or path_b.startswith(path_a + "/"):
                    raise TopologyError(f"{key_a} ({path_a}) and {key_b} ({path_b}) overlap on host {host}")


def _private_blocks(block: IPv4Network, plans: PlanSet, skip: int = 1) -> dict[str, IPv4Network]:
    """One lab block per plan private network, from the /18 after the extranet's /20.

    A block has the plan CIDR's size when everything fits, else the largest common size that does
    (at least a /29: the office and up to five data-center hosts)."""
    pool = list(block.subnets(new_prefix=20))[skip:]
    start, end = int(pool[0].network_address), int(pool[-1].broadcast_address) + 1
    nets = [(f"{p.id}/{n.id}", n.cidr, _members_needed(p, n.systems)) for p in plans.departments.values()
            for n in p.private_networks]
    for floor in range(24, 30):
        out: dict[str, IPv4Network] = {}
        cursor = start
        for key, cidr, needed in nets:
            prefix = max(cidr.prefixlen, floor)
            size = 2 ** (32 - prefix)
            if size < needed + 2:
                break
            cursor = -(-cursor // size) * size  # align
            if cursor + size > end:
                break
            out[key] = IPv4Network((cursor, prefix))
            cursor += size
        else:
            return out
    raise TopologyError(f"the plans' {len(nets)} private networks do not fit in the lab's {len(pool) * 4096} "
                        "private addresses")


def _members_needed(plan: DepartmentPlan, systems: list[str]) -> int:
    by_id = {s.id: s for s in plan.systems}
    return 1 + len({by_id[s].host for s in systems if s in by_id})


def unroutable_default(plans: PlanSet) -> list[str]:
    """The target groups a lab with execution nodes hides from the control node by default: the
    municipal data centers (behind the extranet's boundary in the real province)."""
    return sorted({p.target_group for p in plans.departments.values() if p.target_group.startswith("municipal-dc-")})


def build_topology(plans: PlanSet, name: str = "fjmig", index: int = 0, *, nodes: bool = False,
                   hidden: list[str] | None = None) -> Topology:
    """Hosts, networks, addresses and services of the lab for `plans` (deterministic). `nodes`:
    an execution node per target group; `hidden`: target groups the control node has no route to."""
    check_name(name)
    block = lab_block(index)
    subnets = list(block.subnets(new_prefix=20))
    extranet = subnets[0]
    addresses = extranet.hosts()
    control = next(addresses)
    groups_of_plans = sorted({p.target_group for p in plans.departments.values()})
    hidden = sorted(set(hidden or []))
    if hidden and not nodes:
        raise TopologyError("hidden data centers need execution nodes (--execution-nodes)")
    unknown = [g for g in hidden if g not in groups_of_plans]
    if unknown:
        raise TopologyError(f"{', '.join(unknown)}: no department moves there (target groups: "
                            f"{', '.join(groups_of_plans)})")
    topo = Topology(name=name, index=index, block=str(block), extranet=str(extranet),
                    control_address=str(control), bridge=f"{name}-x", hidden=hidden,
                    hidden_block=str(subnets[1]) if hidden else None)
    hidden_addresses = subnets[1].hosts()
    seq = iter(range(100_000))

    def veth() -> str:
        return f"{name}-{next(seq)}"

    def add(host_name: str, role: str, groups: list[str], **extra: object) -> None:
        if host_name in topo.hosts:
            raise TopologyError(f"host name {host_name!r} is used twice (as {topo.hosts[host_name].role} "
                                f"and as {role}); lab host names must be unique")
        try:
            address = str(next(hidden_addresses if extra.get("target_group") in hidden else addresses))
        except StopIteration:
            raise TopologyError(f"more hosts than the extranet {extranet} holds") from None
        topo.hosts[host_name] = Host(name=host_name, role=role, groups=(*groups, role), address=address,
                                     netns=f"{name}-{host_name}", veth=veth(), **extra)  # type: ignore[arg-type]

    departments = list(plans.departments.values())
    add("sharing-platform", "platform", [])
    for group in sorted({p.target_group for p in departments}):
        add(f"archive-{group}", "archive", [group], target_group=group)
    services: list[tuple[str, str, str]] = []
    for plan in departments:
        hosts = plan.datacenter.hosts if plan.datacenter else []
        for host in hosts:
            add(host, "source", [plan.id], dept=plan.id)
        for system in plan.systems:
            key = f"{plan.id}/{system.id}"
            if system.host not in hosts:
                raise TopologyError(f"{key}: host {system.host!r} is not one of {plan.id}'s datacenter.hosts")
            services.append((key, system.host, _srv_path(key, system)))
    _check_paths(services)
    for plan in departments:
        group = plan.target_group
        topo.archives[plan.id] = f"archive-{group}"
        for system in plan.systems:
            if system.migrates:
                add(target_host(plan.id, system.id), "target", [group], dept=plan.id, target_group=group)
    for plan in departments:
        if plan.private_networks:
            add(f"office-{plan.id}", "office", [plan.id], dept=plan.id)
    if nodes:
        for group in groups_of_plans:
            node = f"node-{group}"
            add(node, "node", [NODES_GROUP])
            topo.nodes[node] = [group, *sorted(p.id for p in departments if p.target_group == group), "platform"]
    _add_private_networks(topo, plans, veth)
    _add_services(topo, departments)
    groups = {g for h in topo.hosts.values() for g in h.groups}
    clash = groups & set(topo.hosts)
    if clash:
        raise TopologyError(f"{', '.join(sorted(clash))}: both a host and a group name")
    return topo


def _add_private_networks(topo: Topology, plans: PlanSet, veth: Callable[[], str]) -> None:
    blocks = _private_blocks(IPv4Network(topo.block), plans, skip=2 if topo.hidden_block else 1)
    links: dict[str, list[PrivateLink]] = {}
    for plan in plans.departments.values():
        by_id = {s.id: s for s in plan.systems}
        for net in plan.private_networks:
            key = f"{plan.id}/{net.id}"
            lab = blocks[key]
            hosts = [f"office-{plan.id}"]
            for system_id in net.systems:
                if system_id not in by_id:
                    raise TopologyError(f"{key}: system {system_id!r} is not a system of {plan.id}")
                if by_id[system_id].host not in hosts:
                    hosts.append(by_id[system_id].host)
            bridge = f"{topo.name}-b{len(topo.networks)}"
            topo.networks[key] = PrivateNet(key=key, dept=plan.id, id=net.id, plan_cidr=str(net.cidr),
                                            lab_cidr=str(lab), bridge=bridge, migrate_to=net.migrate_to,
                                            members=tuple(hosts))
            for host, address in zip(hosts, lab.hosts(), strict=False):
                mine = links.setdefault(host, [])
                mine.append(PrivateLink(network=key, interface=f"priv{len(mine)}",
                                        address=f"{address}/{lab.prefixlen}", veth=veth()))
    for host, host_links in links.items():
        old = topo.hosts[host]
        topo.hosts[host] = Host(**{**old.__dict__, "links": tuple(host_links)})


def _add_services(topo: Topology, departments: list[DepartmentPlan]) -> None:
    for plan in departments:
        on_net = {s: f"{plan.id}/{n.id}" for n in plan.private_networks for s in n.systems}
        for position, system in enumerate(plan.systems):
            key = f"{plan.id}/{system.id}"
            host = topo.hosts[system.host]
            network = on_net.get(system.id)
            address = host.address
            if network:
                address = next(link.address for link in host.links if link.network == network).split("/")[0]
            topo.services[key] = Service(
                key=key, dept=plan.id, system=system.id, host=system.host, path=system.data.path,
                port=service_port(position), name=service_name(plan.id, system.id),
                source_address=address, network=network, status=system.status,
                classification=system.classification, migrates=system.migrates,
                target_host=target_host(plan.id, system.id) if system.migrates else None,
                size_gb=system.data.size_gb)


def address_in_lab(address: str) -> bool:
    return IPv4Address(address) in LAB_SPACE


def to_dict(topo: Topology) -> dict[str, object]:
    """JSON-able form, recorded in the lab's state so that status and down need no plans."""
    from dataclasses import asdict

    return asdict(topo)


def from_dict(data: dict[str, object]) -> Topology:
    raw = dict(data)
    hosts = {name: Host(**{**h, "groups": tuple(h["groups"]),
                           "links": tuple(PrivateLink(**link) for link in h["links"])})
             for name, h in raw.pop("hosts").items()}  # type: ignore[attr-defined]
    networks = {key: PrivateNet(**{**n, "members": tuple(n["members"])})
                for key, n in raw.pop("networks").items()}  # type: ignore[attr-defined]
    services = {key: Service(**s) for key, s in raw.pop("services").items()}  # type: ignore[attr-defined]
    return Topology(**raw, hosts=hosts, networks=networks, services=services)  # type: ignore[arg-type]


def node_of(topo: Topology, host: str) -> str | None:
    """The execution node that serves a host's group (the lab's nodes serve disjoint target groups)."""
    groups = set(topo.hosts[host].groups)
    return next((node for node, served in topo.nodes.items() if groups & set(served[:1])), None)
