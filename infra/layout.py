"""What a department's tenancy contains, decided in plain Python from its plan.

Sizing rules (docs/INFRA.md repeats them for reviewers):
- an instance per active, unclassified system, named `<dept>-<system>`; its flavor is the smallest
  configured flavor whose `maxDataGb` covers the system's `data.size_gb`;
- its data volume is `data.size_gb` plus `dataHeadroom` (default 30%), at least 10 GB;
- a department with zombies gets an archive host `archive-<dept>` (smallest flavor) with an
  archive volume sized for all its zombies' data plus `dataHeadroom`;
- addresses inside the department subnet: `.1` the router, `+9` the archive host, `+10+i` the
  system at index `i` of the plan's `systems` list (stable while systems are appended); the lower
  half of the subnet is for these fixed addresses, the upper half is the DHCP pool;
- the service port of the system at index `i` is `8000 + i` (the lab uses the same rule);
- quotas are what the tenancy uses plus `quotaHeadroom` (default 50%), rounded up;
- classified and police-sensitive systems get nothing at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from orchestrator.plans.model import DepartmentPlan, System
from orchestrator.plans.naming import service_port, target_host

from .errors import InfraError
from .settings import Flavor, Segment, Settings

GATEWAY_OFFSET = 1
ARCHIVE_OFFSET = 9
FIRST_SYSTEM_OFFSET = 10
MIN_VOLUME_GB = 10
SSH = 22
DEFAULT_GROUP_RULES = 4
"""Neutron's `default` group of every project: two ingress-from-itself and two egress rules."""
EGRESS_RULES_PER_GROUP = 2
"""Every new security group starts with allow-all egress rules for IPv4 and IPv6."""


host_name = target_host  # the instance name is the executor's target host name


def archive_host_name(dept: str) -> str:
    return f"archive-{dept}"


def required_prefix(system_count: int) -> int:
    """The largest prefix whose lower half holds the fixed addresses for twice as many systems."""
    fixed = FIRST_SYSTEM_OFFSET + 2 * system_count + 1
    size = max(16, 2 ** math.ceil(math.log2(2 * fixed)))
    return 32 - int(math.log2(size))


def department_tags(plan: DepartmentPlan) -> list[str]:
    """Keystone project and instance tags (neither allows '/' or ',')."""
    dept = plan.department
    return [f"department={dept.id}", f"level={dept.level}", f"city={dept.city or 'none'}"]


def system_tags(plan: DepartmentPlan, system: System) -> list[str]:
    return [*department_tags(plan), f"system={system.id}", f"classification={system.classification}"]


def flavor_for(size_gb: float, flavors: tuple[Flavor, ...]) -> Flavor:
    return next(f for f in flavors if f.max_data_gb is None or size_gb <= f.max_data_gb)


def volume_gb(size_gb: float, headroom: float) -> int:
    return max(MIN_VOLUME_GB, math.ceil(size_gb * (1 + headroom)))


def with_headroom(need: int, headroom: float) -> int:
    return math.ceil(need * (1 + headroom))


@dataclass(frozen=True)
class RuleSpec:
    """One ingress rule: protocol and port range from a CIDR."""

    description: str
    protocol: str
    port_min: int
    port_max: int
    remote: IPv4Network


@dataclass(frozen=True)
class Host:
    name: str
    address: IPv4Address
    flavor: Flavor
    volume_name: str
    volume_gb: int
    groups: tuple[str, ...]
    tags: tuple[str, ...]
    system: System | None = None
    index: int | None = None

    @property
    def port(self) -> int | None:
        return None if self.index is None else service_port(self.index)


@dataclass(frozen=True)
class Usage:
    """Resources a tenancy uses (or, with headroom, its quotas)."""

    instances: int
    cores: int
    ram_mb: int
    volumes: int
    gigabytes: int
    networks: int
    subnets: int
    routers: int
    ports: int
    security_groups: int
    security_group_rules: int

    def with_headroom(self, headroom: float) -> Usage:
        return Usage(**{k: with_headroom(v, headroom) for k, v in self.__dict__.items()})


@dataclass(frozen=True)
class TenancyLayout:
    plan: DepartmentPlan
    cidr: IPv4Network
    segment: Segment
    hosts: tuple[Host, ...]
    groups: dict[str, tuple[RuleSpec, ...]] = field(hash=False)
    usage: Usage
    quotas: Usage

    @property
    def dept(self) -> str:
        return self.plan.id

    @property
    def gateway(self) -> IPv4Address:
        return self.cidr.network_address + GATEWAY_OFFSET

    @property
    def pool(self) -> tuple[IPv4Address, IPv4Address]:
        """The DHCP allocation pool: the upper half of the subnet, without the broadcast address."""
        half = self.cidr.num_addresses // 2
        return self.cidr.network_address + half, self.cidr.broadcast_address - 1

    @property
    def tags(self) -> list[str]:
        return department_tags(self.plan)

    @property
    def system_hosts(self) -> tuple[Host, ...]:
        return tuple(h for h in self.hosts if h.system is not None)

    @property
    def archive(self) -> Host | None:
        return next((h for h in self.hosts if h.system is None), None)


def segment_for(plan: DepartmentPlan, settings: Settings) -> Segment:
    """The horizontal extranet segment of the department's level (and city): its router's gateway."""
    dept = plan.department
    for segment in settings.extranet.segments:
        if segment.kind == "horizontal" and segment.level == dept.level and segment.city == dept.city:
            return segment
    where = f"level={dept.level}" + (f" city={dept.city}" if dept.city else "")
    raise InfraError(f"{plan.id}: no horizontal extranet segment with {where} in config "
                     "digital-fujian:extranet.segments; its router has nowhere to connect")


def tenancy_layout(plan: DepartmentPlan, cidr: IPv4Network, settings: Settings) -> TenancyLayout:
    """Everything the tenancy of `plan` contains, given its subnet."""
    dept = plan.id
    base = cidr.network_address
    groups: dict[str, tuple[RuleSpec, ...]] = {
        f"{dept}-baseline": tuple(RuleSpec("ssh from operations", "tcp", SSH, SSH, net)
                                  for net in settings.operations_cidrs),
    }
    moving = [(i, s) for i, s in enumerate(plan.systems) if s.migrates]
    shared_ports = [service_port(i) for i, s in moving if s.share]
    sharing = f"{dept}-sharing"
    if shared_ports:
        groups[sharing] = tuple(
            RuleSpec(f"{what} from the sharing platform", "tcp", port, port, net)
            for net in settings.sharing_platform_cidrs
            for what, port in [("ssh", SSH), *((f"service {p}", p) for p in shared_ports)]
        )
    hosts = []
    for index, system in moving:
        name = host_name(dept, system.id)
        port = service_port(index)
        groups[name] = tuple(RuleSpec(f"{system.id} service", "tcp", port, port, net)
                             for net in settings.client_cidrs)
        names = (f"{dept}-baseline", name, *((sharing,) if system.share else ()))
        hosts.append(Host(name, base + FIRST_SYSTEM_OFFSET + index, flavor_for(system.data.size_gb, settings.flavors),
                          f"{name}-data", volume_gb(system.data.size_gb, settings.data_headroom), names,
                          tuple(system_tags(plan, system)), system, index))
    zombies = [s for s in plan.systems if s.status == "zombie" and not s.excluded]
    if zombies:
        name = archive_host_name(dept)
        hosts.append(Host(name, base + ARCHIVE_OFFSET, settings.flavors[0], f"{name}-volume",
                          volume_gb(sum(z.data.size_gb for z in zombies), settings.data_headroom),
                          (f"{dept}-baseline",), (*department_tags(plan), "role=archive")))
    last = base + FIRST_SYSTEM_OFFSET + len(plan.systems)
    if last >= base + cidr.num_addresses // 2:
        raise InfraError(f"{dept}: subnet {cidr} is too small for {len(plan.systems)} systems; "
                         f"it needs at least a /{required_prefix(len(plan.systems))}")
    usage = Usage(
        instances=len(hosts),
        cores=sum(h.flavor.vcpus for h in hosts),
        ram_mb=sum(h.flavor.ram_mb for h in hosts),
        volumes=len(hosts),
        gigabytes=sum(h.volume_gb for h in hosts),
        networks=1,
        subnets=1,
        routers=1,
        ports=len(hosts) + 2,  # the instances, the router interface, the DHCP port
        security_groups=len(groups) + 1,  # ours and the project's default group
        security_group_rules=sum(len(r) for r in groups.values()) + EGRESS_RULES_PER_GROUP * len(groups)
        + DEFAULT_GROUP_RULES,
    )
    return TenancyLayout(plan, cidr, segment_for(plan, settings), tuple(hosts), groups, usage,
                         usage.with_headroom(settings.quota_headroom))
