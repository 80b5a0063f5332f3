"""The stack program: settings -> plans -> address plan -> extranet and tenancies -> outputs.

Everything that can be wrong with the inputs is checked before the first resource is
registered, so that a bad plan or config fails `pulumi preview` with one clear message.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pulumi

from .addresses import check_allocations, check_extranet, load_allocations
from .cloud import DepartmentTenancy, DepartmentTenancyArgs
from .cloud.credentials import Credentials, credentials
from .cloud.deployer import lookup_deployer, lookup_roles, raise_rbac_quota
from .errors import InfraError
from .layout import TenancyLayout, tenancy_layout
from .network import BoundaryAccessPlatform, BoundaryAccessPlatformArgs, Extranet, ExtranetArgs
from .plans import check_milestones, departments_in_scope, load_checked
from .settings import PROJECT_ROOT, Settings, parse_settings, read_config


def plan_stack(settings: Settings) -> tuple[list[TenancyLayout], list[str]]:
    """The tenancies and milestones of this stack, from the plans and the address file (no resources)."""
    plans = load_checked(settings.plans)
    milestones = check_milestones(plans, settings.milestones)
    check_extranet(plans, settings)
    allocations = load_allocations(settings.addresses)
    subnets = check_allocations(plans, allocations, settings, settings.addresses)
    layouts = [tenancy_layout(plan, subnets[plan.id], settings) for plan in departments_in_scope(plans, settings.scope)]
    names: dict[str, str] = {}
    for layout in layouts:
        for host in layout.hosts:
            if host.name in names:
                raise InfraError(f"host name {host.name!r} is used by {names[host.name]} and {layout.dept}")
            names[host.name] = layout.dept
    return layouts, milestones


def build(settings: Settings, creds: Credentials) -> dict[str, Any]:
    """Register every resource of the stack; returns the stack outputs (the executor's contract).
    The plans are checked before the cloud is asked anything."""
    layouts, milestones = plan_stack(settings)
    deployer = lookup_deployer()
    extranet = Extranet("extranet", ExtranetArgs(settings.extranet))
    outputs: dict[str, Any] = {}
    boundary = settings.extranet.boundary
    if boundary is not None:
        assert settings.external_network is not None  # parse_settings insists
        platform = BoundaryAccessPlatform("boundary", BoundaryAccessPlatformArgs(
            boundary, settings.external_network, extranet.segments[boundary.segment]))
        outputs["boundary"] = {"router_id": platform.router_id, "security_group_id": platform.security_group_id}
    roles = lookup_roles(settings.operator_role, settings.deployer_role, deployer)
    quota = raise_rbac_quota(deployer, grants=len(layouts), reserve=settings.rbac_quota_reserve)
    targets: dict[str, Any] = {}
    archives: dict[str, Any] = {}
    tenancies: dict[str, Any] = {}
    for layout in layouts:
        tenancy = DepartmentTenancy(layout.dept, DepartmentTenancyArgs(
            layout, roles, extranet.segments[layout.segment.name].network.id, settings.image, settings.key_pair,
            creds, grant_depends_on=tuple(quota), extranet=extranet))
        targets.update(tenancy.targets)
        if tenancy.archive is not None:
            archives[layout.dept] = tenancy.archive
        tenancies[layout.dept] = tenancy.summary
    outputs.update({
        "scope": settings.scope,
        "targets": targets,
        "archives": archives,
        "tenancies": tenancies,
        "milestones": milestones,
        "extranet": {name: {"network_id": r.network.id, "cidr": str(r.segment.cidr), "vlan": r.segment.vlan,
                            "bandwidth_mbps": r.segment.bandwidth_mbps} for name, r in extranet.segments.items()},
    })
    return outputs


def openstack_config() -> dict[str, Any]:
    """The `openstack:cloud` and `openstack:region` of the stack (the default provider's)."""
    config = pulumi.Config("openstack")
    return {"cloud": config.get("cloud"), "region": config.get("region")}


def main(root: Path = PROJECT_ROOT) -> None:
    """The Pulumi entry point (and the Automation API's inline program): read the stack config and the
    credential source, build, export. Relative paths in config are resolved against `root`."""
    settings = parse_settings(read_config(), root)
    creds = credentials(openstack_config(), os.environ)
    for name, value in build(settings, creds).items():
        pulumi.export(name, value)
