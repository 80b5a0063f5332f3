"""Stack settings: the `digital-fujian:*` config keys, parsed and checked before anything is built.

Parsing is separate from `pulumi.Config` so that it can be tested with plain dicts, and every
error names the config key to fix (`pulumi config set digital-fujian:<key> ...`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, ip_address, ip_network
from pathlib import Path
from typing import Any

from orchestrator.plans.model import CITIES

from .errors import InfraError

NAMESPACE = "digital-fujian"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
"""The directory of Pulumi.yaml: relative paths in config are resolved against it."""

STRING_KEYS = ("plans", "scope", "addressSpace", "externalNetwork", "image", "keyPair", "addresses",
               "operatorRole", "deployerRole")
NUMBER_KEYS = ("quotaHeadroom", "dataHeadroom", "rbacQuotaReserve")
OBJECT_KEYS = ("flavors", "operationsCidrs", "clientCidrs", "sharingPlatformCidrs", "milestones", "extranet")

DEFAULT_RBAC_QUOTA_RESERVE = 20
FIXED_SCOPES = ("provincial-cloud", "social-enterprise-cloud")
LEVELS = ("province", "city", "county")

DEFAULT_FLAVORS: tuple[dict[str, Any], ...] = (
    {"name": "fj.small", "vcpus": 2, "ramMb": 4096, "maxDataGb": 100},
    {"name": "fj.medium", "vcpus": 4, "ramMb": 8192, "maxDataGb": 500},
    {"name": "fj.large", "vcpus": 8, "ramMb": 16384, "maxDataGb": 1000},
    {"name": "fj.xlarge", "vcpus": 16, "ramMb": 32768},
)


@dataclass(frozen=True)
class Flavor:
    """An existing Nova flavor, and the largest system data (GB) it is sized for (None: any)."""

    name: str
    vcpus: int
    ram_mb: int
    max_data_gb: float | None


@dataclass(frozen=True)
class Segment:
    """One VLAN segment of the extranet: a provider network with its subnet and bandwidth."""

    name: str
    kind: str  # vertical | horizontal
    level: str  # province | city | county
    city: str | None
    vlan: int
    cidr: IPv4Network
    gateway: IPv4Address
    bandwidth_mbps: int
    burst_kb: int


@dataclass(frozen=True)
class Flow:
    """A flow the boundary access platform admits: protocol and ports from one source CIDR."""

    name: str
    protocol: str
    port_min: int
    port_max: int
    source: IPv4Network


@dataclass(frozen=True)
class Boundary:
    """The boundary secure access platform between the government information network and the extranet."""

    cidr: IPv4Network
    segment: str
    extranet_address: IPv4Address
    flows: tuple[Flow, ...]


@dataclass(frozen=True)
class Extranet:
    physical_network: str
    segments: tuple[Segment, ...]
    boundary: Boundary | None

    def segment(self, name: str) -> Segment:
        return next(s for s in self.segments if s.name == name)


@dataclass(frozen=True)
class Settings:
    plans: Path
    addresses: Path
    scope: str
    address_space: IPv4Network
    external_network: str | None
    image: str
    key_pair: str | None
    flavors: tuple[Flavor, ...]
    operations_cidrs: tuple[IPv4Network, ...]
    client_cidrs: tuple[IPv4Network, ...]
    sharing_platform_cidrs: tuple[IPv4Network, ...]
    operator_role: str
    deployer_role: str
    quota_headroom: float
    data_headroom: float
    rbac_quota_reserve: int
    """Room in the deploying project's rbac_policy quota for the grants it owns besides this stack's."""
    milestones: tuple[str, ...]
    extranet: Extranet

    @property
    def city(self) -> str | None:
        """The city of a `municipal-dc-<city>` scope."""
        return self.scope.removeprefix("municipal-dc-") if self.scope.startswith("municipal-dc-") else None


def _fail(key: str, message: str) -> InfraError:
    return InfraError(f"config {NAMESPACE}:{key}: {message}")


def _path(raw: Mapping[str, Any], key: str, default: str, root: Path) -> Path:
    value = raw.get(key) or default
    path = Path(value)
    return path if path.is_absolute() else root / path


def _network(key: str, value: Any, *, allow_any: bool = False) -> IPv4Network:
    try:
        net = ip_network(str(value), strict=True)
    except ValueError as exc:
        raise _fail(key, f"{value!r} is not an IPv4 network in CIDR form ({exc})") from None
    if not isinstance(net, IPv4Network):
        raise _fail(key, f"{value!r}: only IPv4 is planned")
    if net.prefixlen == 0 and not allow_any:
        raise _fail(key, f"{value!r} admits the whole internet; name the networks that need access")
    return net


def _address(key: str, value: Any) -> IPv4Address:
    try:
        address = ip_address(str(value))
    except ValueError:
        raise _fail(key, f"{value!r} is not an IPv4 address") from None
    if not isinstance(address, IPv4Address):
        raise _fail(key, f"{value!r}: only IPv4 is planned")
    return address


def _networks(raw: Mapping[str, Any], key: str, *, required: bool) -> tuple[IPv4Network, ...]:
    value = raw.get(key)
    if value is None:
        value = []
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise _fail(key, "must be a list of CIDRs, e.g. [\"10.10.0.0/24\"]")
    if required and not value:
        raise _fail(key, "must list at least one CIDR")
    return tuple(_network(key, v) for v in value)


def _int(key: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise _fail(key, f"{value!r} is not a whole number")
    if not low <= value <= high:
        raise _fail(key, f"{value} is outside {low}..{high}")
    return int(value)


def _number(raw: Mapping[str, Any], key: str, default: float) -> float:
    value = raw.get(key, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _fail(key, f"{value!r} is not a number") from None
    if not 0 <= number <= 10:
        raise _fail(key, f"{number} is outside 0..10 (0.5 means 50% headroom)")
    return number


def parse_scope(value: Any) -> str:
    scope = str(value or "")
    if scope in FIXED_SCOPES:
        return scope
    city = scope.removeprefix("municipal-dc-")
    if scope.startswith("municipal-dc-") and city in CITIES:
        return scope
    raise _fail("scope", f"{scope!r} is not provincial-cloud, social-enterprise-cloud or municipal-dc-<city> "
                f"(cities: {', '.join(CITIES)})")


def parse_flavors(value: Any) -> tuple[Flavor, ...]:
    items = DEFAULT_FLAVORS if value is None else value
    if not isinstance(items, Sequence) or isinstance(items, str) or not items:
        raise _fail("flavors", "must be a non-empty list of {name, vcpus, ramMb, maxDataGb}")
    flavors = []
    for index, item in enumerate(items):
        key = f"flavors[{index}]"
        if not isinstance(item, Mapping) or not item.get("name"):
            raise _fail(key, "needs name, vcpus, ramMb and (except the largest) maxDataGb")
        limit = item.get("maxDataGb")
        flavors.append(Flavor(str(item["name"]), _int(f"{key}.vcpus", item.get("vcpus"), 1, 512),
                              _int(f"{key}.ramMb", item.get("ramMb"), 256, 4 * 1024 * 1024),
                              None if limit is None else _int(f"{key}.maxDataGb", limit, 1, 10**7)))
    flavors.sort(key=lambda f: float("inf") if f.max_data_gb is None else f.max_data_gb)
    if flavors[-1].max_data_gb is not None:
        raise _fail("flavors", "the largest flavor must have no maxDataGb, so that every system has a flavor")
    return tuple(flavors)


def _is_name(value: Any) -> bool:
    return isinstance(value, str) and bool(value) and value.replace("-", "").isascii() \
        and value.replace("-", "").isalnum()


def _segment(index: int, item: Any) -> Segment:
    key = f"extranet.segments[{index}]"
    if not isinstance(item, Mapping):
        raise _fail(key, "must be a mapping {name, kind, level, city, vlan, cidr, bandwidthMbps}")
    name = str(item.get("name") or "")
    if not _is_name(name):
        raise _fail(f"{key}.name", f"{name!r} must be letters, digits and '-'")
    kind = item.get("kind")
    if kind not in ("vertical", "horizontal"):
        raise _fail(f"{key}.kind", f"{kind!r} is not vertical or horizontal")
    level = item.get("level")
    if level not in LEVELS:
        raise _fail(f"{key}.level", f"{level!r} is not one of {', '.join(LEVELS)}")
    city = item.get("city")
    if level == "province" and city is not None:
        raise _fail(f"{key}.city", "a province-level segment has no city")
    if level != "province" and city not in CITIES:
        raise _fail(f"{key}.city", f"{city!r}: a {level} segment names its city ({', '.join(CITIES)})")
    cidr = _network(f"{key}.cidr", item.get("cidr"))
    if cidr.num_addresses < 8:
        raise _fail(f"{key}.cidr", f"{cidr} is too small for a gateway and router ports (at least /29)")
    gateway = _address(f"{key}.gateway", item.get("gateway") or cidr.network_address + 1)
    if gateway not in cidr:
        raise _fail(f"{key}.gateway", f"{gateway} is not in {cidr}")
    return Segment(name, kind, level, city, _int(f"{key}.vlan", item.get("vlan"), 1, 4094), cidr, gateway,  # type: ignore[arg-type]
                   _int(f"{key}.bandwidthMbps", item.get("bandwidthMbps"), 1, 400_000),
                   _int(f"{key}.burstKb", item.get("burstKb", 0), 0, 10_000_000))


def _flow(index: int, item: Any) -> Flow:
    key = f"extranet.boundary.flows[{index}]"
    if not isinstance(item, Mapping) or not _is_name(item.get("name")):
        raise _fail(key, "must be {name, protocol, port (or ports: [min, max]), from}; "
                    "name is letters, digits and '-'")
    protocol = item.get("protocol")
    if protocol not in ("tcp", "udp"):
        raise _fail(f"{key}.protocol", f"{protocol!r}: the boundary admits tcp or udp flows only")
    ports = item.get("ports") or [item.get("port"), item.get("port")]
    if not isinstance(ports, Sequence) or len(ports) != 2:
        raise _fail(f"{key}.ports", "must be [min, max]")
    low, high = (_int(f"{key}.port", p, 1, 65535) for p in ports)
    if low > high:
        raise _fail(f"{key}.ports", f"{low} > {high}")
    return Flow(str(item["name"]), protocol, low, high, _network(f"{key}.from", item.get("from")))


def parse_extranet(value: Any) -> Extranet:
    if not isinstance(value, Mapping):
        raise _fail("extranet", "must be a mapping {physicalNetwork, segments, boundary}")
    physical = value.get("physicalNetwork")
    if not physical:
        raise _fail("extranet.physicalNetwork", "names the Neutron physical network that carries the VLANs")
    raw_segments = value.get("segments") or []
    if not isinstance(raw_segments, Sequence) or not raw_segments:
        raise _fail("extranet.segments", "must list the stack's extranet segments")
    segments = tuple(_segment(i, item) for i, item in enumerate(raw_segments))
    seen: dict[str, Segment] = {}
    for segment in segments:
        for other in seen.values():
            if other.name == segment.name:
                raise _fail("extranet.segments", f"segment name {segment.name!r} is used twice")
            if other.vlan == segment.vlan:
                raise _fail("extranet.segments", f"VLAN {segment.vlan} is used by {other.name} and {segment.name}")
            if other.cidr.overlaps(segment.cidr):
                raise _fail("extranet.segments", f"{segment.name} {segment.cidr} overlaps {other.name} {other.cidr}")
        seen[segment.name] = segment
    boundary = None
    raw_boundary = value.get("boundary")
    if raw_boundary is not None:
        boundary = _boundary(raw_boundary, seen)
    return Extranet(str(physical), segments, boundary)


def _boundary(raw: Any, segments: Mapping[str, Segment]) -> Boundary:
    key = "extranet.boundary"
    if not isinstance(raw, Mapping):
        raise _fail(key, "must be {cidr, segment, extranetAddress, flows}")
    segment = raw.get("segment")
    if segment not in segments:
        raise _fail(f"{key}.segment", f"{segment!r} is not one of this stack's segments ({', '.join(segments)})")
    address = _address(f"{key}.extranetAddress", raw.get("extranetAddress"))
    seg = segments[segment]
    if address not in seg.cidr or address in (seg.gateway, seg.cidr.network_address, seg.cidr.broadcast_address):
        raise _fail(f"{key}.extranetAddress", f"{address} must be a free host address of {seg.name} {seg.cidr}")
    flows = raw.get("flows") or []
    if not isinstance(flows, Sequence) or not flows:
        raise _fail(f"{key}.flows", "must declare the flows the platform admits (nothing else gets through)")
    cidr = _network(f"{key}.cidr", raw.get("cidr"))
    if any(cidr.overlaps(s.cidr) for s in segments.values()):
        raise _fail(f"{key}.cidr", f"{cidr} overlaps an extranet segment")
    return Boundary(cidr, str(segment), address, tuple(_flow(i, f) for i, f in enumerate(flows)))  # type: ignore[arg-type]


def parse_settings(raw: Mapping[str, Any], root: Path = PROJECT_ROOT) -> Settings:
    """Build Settings from config values (objects already decoded). Raises InfraError naming the key."""
    scope = parse_scope(raw.get("scope"))
    space = _network("addressSpace", raw.get("addressSpace"))
    if not raw.get("image"):
        raise _fail("image", "names the Glance image the instances boot from")
    milestones = raw.get("milestones") or [scope]
    if not isinstance(milestones, Sequence) or isinstance(milestones, str):
        raise _fail("milestones", "must be a list of infra.yaml milestone ids")
    extranet = parse_extranet(raw.get("extranet"))
    for segment in extranet.segments:
        if segment.cidr.overlaps(space):
            raise _fail("extranet.segments", f"{segment.name} {segment.cidr} overlaps addressSpace {space}")
    settings = Settings(
        plans=_path(raw, "plans", "migration_plans", root),
        addresses=_path(raw, "addresses", "infra/addresses.yaml", root),
        scope=scope,
        address_space=space,
        external_network=raw.get("externalNetwork") or None,
        image=str(raw["image"]),
        key_pair=raw.get("keyPair") or None,
        flavors=parse_flavors(raw.get("flavors")),
        operations_cidrs=_networks(raw, "operationsCidrs", required=True),
        client_cidrs=_networks(raw, "clientCidrs", required=True),
        sharing_platform_cidrs=_networks(raw, "sharingPlatformCidrs", required=True),
        operator_role=str(raw.get("operatorRole") or "member"),
        deployer_role=str(raw.get("deployerRole") or "admin"),
        quota_headroom=_number(raw, "quotaHeadroom", 0.5),
        data_headroom=_number(raw, "dataHeadroom", 0.3),
        rbac_quota_reserve=_int("rbacQuotaReserve", raw.get("rbacQuotaReserve", DEFAULT_RBAC_QUOTA_RESERVE), 0, 10**6),
        milestones=tuple(str(m) for m in milestones),
        extranet=extranet,
    )
    if extranet.boundary and not settings.external_network:
        raise _fail("externalNetwork", "the boundary platform needs the government information network's "
                    "external network name")
    if settings.city:
        foreign = [s.name for s in extranet.segments if s.city != settings.city]
        if foreign:
            raise _fail("extranet.segments", f"a {settings.scope} stack builds {settings.city}'s segments only, "
                        f"not {', '.join(foreign)}")
    return settings


def read_config() -> dict[str, Any]:
    """The raw `digital-fujian:*` values of the current stack (needs the Pulumi runtime)."""
    import pulumi

    config = pulumi.Config(NAMESPACE)
    raw: dict[str, Any] = {key: config.get(key) for key in STRING_KEYS}
    for key in NUMBER_KEYS:
        raw[key] = config.get_float(key) if config.get(key) is not None else None
    for key in OBJECT_KEYS:
        raw[key] = config.get_object(key)
    return {key: value for key, value in raw.items() if value is not None}
