"""What must never reach a Digital Fujian cloud, as plain validate functions.

Four rules (no inbound from anywhere, department tags on instances, nothing for a
classified system, subnets inside the address space) and one more: no network opened to every
project (the extranet is shared per tenant project by RBAC).

Each function takes `ResourceValidationArgs` (inputs with the engine's camelCase names) and a
`report_violation` callback, so that the tests call them directly and over every resource a mock
run registers. `policy/__main__.py` wraps them in a `PolicyPack` for `pulumi preview --policy-pack`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from ipaddress import IPv4Network, ip_network
from pathlib import Path
from typing import Any

from pulumi_policy import EnforcementLevel, PolicyConfigSchema, ResourceValidationArgs, ResourceValidationPolicy

from orchestrator.plans.loader import PlansDirectoryError, load_plans

ReportViolation = Callable[..., None]

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PLANS = "migration_plans"
DEFAULT_ADDRESS_SPACES = ("10.64.0.0/10",)
"""The Digital Fujian cloud allocation: every stack's addressSpace and the extranet segments."""

SECGROUP_RULE = "openstack:networking/secGroupRule:SecGroupRule"
INSTANCE = "openstack:compute/instance:Instance"
SUBNET = "openstack:networking/subnet:Subnet"
NETWORK = "openstack:networking/network:Network"
RBAC = "openstack:networking/rbacPolicyV2:RbacPolicyV2"
DEPARTMENT_TAGS = ("department", "level", "city")


def _config(args: ResourceValidationArgs) -> Mapping[str, Any]:
    try:
        return args.get_config() or {}
    except AttributeError:  # a compatible args object without config
        return {}


def tags_of(props: Mapping[str, Any]) -> dict[str, str]:
    """`key=value` tags and metadata of a resource, as one mapping."""
    out: dict[str, str] = {}
    for tag in props.get("tags") or []:
        if isinstance(tag, str) and "=" in tag:
            key, value = tag.split("=", 1)
            out.setdefault(key, value)
    metadata = props.get("metadata")
    if isinstance(metadata, Mapping):
        for key, value in metadata.items():
            out.setdefault(str(key), str(value))
    return out


@lru_cache(maxsize=8)
def plan_facts(plans_dir: str) -> tuple[frozenset[tuple[str, str]], dict[str, tuple[str, str]]]:  # PlanFacts
    """(excluded (department, system) pairs, department -> (level, city)) from the plans."""
    plans = load_plans(plans_dir)
    excluded = frozenset((p.id, s.id) for p in plans.departments.values() for s in p.systems if s.excluded)
    departments = {p.id: (p.department.level, p.department.city or "none") for p in plans.departments.values()}
    return excluded, departments


def _plans_dir(config: Mapping[str, Any]) -> str:
    path = Path(str(config.get("plans") or DEFAULT_PLANS))
    return str(path if path.is_absolute() else ROOT / path)


PlanFacts = tuple[frozenset[tuple[str, str]], dict[str, tuple[str, str]]]


def _facts(args: ResourceValidationArgs, report_violation: ReportViolation) -> PlanFacts | None:
    try:
        return plan_facts(_plans_dir(_config(args)))
    except PlansDirectoryError as exc:
        report_violation(f"cannot check against the migration plans: {exc} (policy config `plans`)")
        return None


def no_inbound_from_anywhere(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """An ingress rule names its source: no 0.0.0.0/0 or ::/0, and no rule without any source."""
    if args.resource_type != SECGROUP_RULE:
        return
    props = args.props
    if props.get("direction") != "ingress":
        return
    prefix = props.get("remoteIpPrefix")
    if not prefix:
        if not props.get("remoteGroupId") and not props.get("remoteAddressGroupId"):
            report_violation(f"{args.name}: ingress rule without a source admits everyone; "
                             "set remote_ip_prefix to the networks that need access")
        return
    try:
        network = ip_network(str(prefix), strict=False)
    except ValueError:
        report_violation(f"{args.name}: remote_ip_prefix {prefix!r} is not a CIDR")
        return
    if network.prefixlen == 0:
        report_violation(f"{args.name}: ingress from {prefix} admits the whole internet; "
                         "name the networks that need access")


def instance_department_tags(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Every instance carries department, level and city tags that match its department's plan."""
    if args.resource_type != INSTANCE or not args.props:
        # No properties at all: a resource left out of this update (`--exclude`, `--target`); the
        # engine hands it to the pack with its old state, which is empty for one never created.
        return
    tags = {}
    for tag in args.props.get("tags") or []:
        if isinstance(tag, str) and "=" in tag:
            key, value = tag.split("=", 1)
            tags[key] = value
    missing = [key for key in DEPARTMENT_TAGS if not tags.get(key)]
    if missing:
        report_violation(f"{args.name}: instance without the department tags {', '.join(missing)} "
                         "(department=<id>, level=<level>, city=<city or none>)")
        return
    facts = _facts(args, report_violation)
    if facts is None:
        return
    _, departments = facts
    dept = tags["department"]
    if dept not in departments:
        report_violation(f"{args.name}: tag department={dept} names no department in the migration plans")
    elif departments[dept] != (tags["level"], tags["city"]):
        level, city = departments[dept]
        report_violation(f"{args.name}: tags level={tags['level']} city={tags['city']} differ from the plan of "
                         f"{dept} (level={level} city={city})")


def no_classified_resources(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Nothing is built for a classified or police-sensitive system (POLICY rule 2)."""
    props = args.props
    tags = tags_of(props)
    classification = tags.get("classification")
    if classification is not None and classification != "unclassified":
        report_violation(f"{args.name}: resource for a {classification} system; such systems never leave "
                         "their department's retained network")
        return
    facts = _facts(args, report_violation)
    if facts is None:
        return
    excluded, _ = facts
    if (tags.get("department"), tags.get("system")) in excluded:
        report_violation(f"{args.name}: resource for {tags['department']}/{tags['system']}, which the plans "
                         "classify as excluded from integration")
        return
    names = {args.name, str(props.get("name") or "")}
    for dept, system in excluded:
        host = f"{dept}-{system}"
        if any(n == host or n.startswith(f"{host}-") for n in names):
            report_violation(f"{args.name}: named for {dept}/{system}, which the plans classify as excluded "
                             "from integration")
            return


def subnet_inside_address_space(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Every subnet comes from the planned address space (policy config `addressSpaces`)."""
    if args.resource_type != SUBNET:
        return
    spaces = [ip_network(s) for s in _config(args).get("addressSpaces") or DEFAULT_ADDRESS_SPACES]
    cidr = args.props.get("cidr")
    try:
        network = ip_network(str(cidr), strict=True)
    except ValueError:
        report_violation(f"{args.name}: subnet CIDR {cidr!r} is not a network address in CIDR form")
        return
    if not isinstance(network, IPv4Network) or not any(
            network.version == s.version and network.subnet_of(s) for s in spaces):  # type: ignore[arg-type]
        report_violation(f"{args.name}: subnet {network} is outside the address space "
                         f"({', '.join(str(s) for s in spaces)})")


def no_network_for_everyone(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Networks are shared per project by RBAC: never `shared`/`external` (a wildcard grant) or target `*`."""
    props = args.props
    if args.resource_type == NETWORK:
        for key in ("shared", "external"):
            if props.get(key) is True:
                report_violation(f"{args.name}: `{key}: true` opens the network to every project; "
                                 "grant it to the tenant projects with RBAC policies instead")
    elif args.resource_type == RBAC and props.get("targetTenant") == "*":
        report_violation(f"{args.name}: RBAC policy for every project (`*`); name the tenant project")


PLANS_SCHEMA = {"type": "string", "default": DEFAULT_PLANS,
                "description": "The migration plans directory, relative to the repository root."}

POLICIES: list[ResourceValidationPolicy] = [
    ResourceValidationPolicy(
        name="no-inbound-from-anywhere", description="Security group rules never admit 0.0.0.0/0 or ::/0 inbound.",
        validate=no_inbound_from_anywhere, enforcement_level=EnforcementLevel.MANDATORY),
    ResourceValidationPolicy(
        name="instance-department-tags", description="Instances carry department, level and city tags.",
        validate=instance_department_tags, enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=PolicyConfigSchema(properties={"plans": PLANS_SCHEMA})),
    ResourceValidationPolicy(
        name="no-classified-resources", description="No resource for a classified or police-sensitive system.",
        validate=no_classified_resources, enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=PolicyConfigSchema(properties={"plans": PLANS_SCHEMA})),
    ResourceValidationPolicy(
        name="no-network-for-everyone", description="Networks are shared to named projects by RBAC only.",
        validate=no_network_for_everyone, enforcement_level=EnforcementLevel.MANDATORY),
    ResourceValidationPolicy(
        name="subnet-inside-address-space", description="Subnets come from the planned address space.",
        validate=subnet_inside_address_space, enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=PolicyConfigSchema(properties={"addressSpaces": {
            "type": "array", "items": {"type": "string"}, "default": list(DEFAULT_ADDRESS_SPACES),
            "description": "CIDRs that every subnet must lie inside."}})),
]

VALIDATORS: dict[str, Callable[[ResourceValidationArgs, ReportViolation], None]] = {
    "no-inbound-from-anywhere": no_inbound_from_anywhere,
    "instance-department-tags": instance_department_tags,
    "no-classified-resources": no_classified_resources,
    "no-network-for-everyone": no_network_for_everyone,
    "subnet-inside-address-space": subnet_inside_address_space,
}
