"""The stack program: settings -> plans -> address plan -> extranet and tenancies -> outputs.

Everything that can be wrong with the inputs is checked before the first resource is
registered, so that a bad plan or config fails `pulumi preview` with one clear message.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_openstack as openstack

from .addresses import check_allocations, check_extranet, load_allocations
from .cloud import DepartmentTenancy, Roles
from .errors import InfraError
from .layout import TenancyLayout, tenancy_layout
from .network import BoundaryAccessPlatform, Extranet
from .plans import check_milestones, departments_in_scope, load_checked
from .settings import Settings, parse_settings, read_config


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


def lookup_roles(settings: Settings) -> Roles:
    scope = openstack.identity.get_auth_scope_output(name="deployer")
    return Roles(
        operator_role_id=openstack.identity.get_role_output(name=settings.operator_role).id,
        deployer_role_id=openstack.identity.get_role_output(name=settings.deployer_role).id,
        deployer_user_id=scope.user_id,
    )


def build(settings: Settings) -> dict[str, Any]:
    """Register every resource of the stack; returns the stack outputs (the executor's contract)."""
    layouts, milestones = plan_stack(settings)
    extranet = Extranet("extranet", settings.extranet)
    outputs: dict[str, Any] = {}
    boundary = settings.extranet.boundary
    if boundary is not None:
        assert settings.external_network is not None  # parse_settings insists
        platform = BoundaryAccessPlatform(boundary, external_network=settings.external_network,
                                          segment=extranet.segments[boundary.segment])
        outputs["boundary"] = {"router_id": platform.router_id, "security_group_id": platform.security_group_id}
    roles = lookup_roles(settings)
    targets: dict[str, Any] = {}
    archives: dict[str, Any] = {}
    tenancies: dict[str, Any] = {}
    for layout in layouts:
        segment = extranet.segments[layout.segment.name]
        tenancy = DepartmentTenancy(
            layout, roles=roles, extranet_network_id=segment.network.id,
            share_extranet=lambda dept, project_id, name=layout.segment.name: extranet.share(name, dept, project_id),
            image=settings.image, key_pair=settings.key_pair)
        targets.update(tenancy.targets())
        archive = tenancy.archive()
        if archive is not None:
            archives[layout.dept] = archive
        tenancies[layout.dept] = tenancy.summary()
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


def main() -> None:
    """The Pulumi entry point: read the stack config, build, export."""
    settings = parse_settings(read_config())
    for name, value in build(settings).items():
        pulumi.export(name, value)
