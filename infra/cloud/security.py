"""Security groups: a baseline (SSH from operations), one per system, one for the sharing platform.

Every rule is ingress from a named CIDR; Neutron adds allow-all egress to each new group.
"""

from __future__ import annotations

import pulumi
import pulumi_openstack as openstack

from ..layout import TenancyLayout


def create_security_groups(layout: TenancyLayout, project_id: pulumi.Input[str],
                           parent: pulumi.Resource) -> dict[str, openstack.networking.SecGroup]:
    """The tenancy's groups, owned by the department's project (`tenant_id`)."""
    opts = pulumi.ResourceOptions(parent=parent)
    groups: dict[str, openstack.networking.SecGroup] = {}
    for name, rules in layout.groups.items():
        group = openstack.networking.SecGroup(
            name, name=name, description=f"{layout.dept}: {name}", tenant_id=project_id, tags=layout.tags,
            opts=opts)
        for index, rule in enumerate(rules):
            openstack.networking.SecGroupRule(
                f"{name}-{index}", description=rule.description, direction="ingress", ethertype="IPv4",
                protocol=rule.protocol, port_range_min=rule.port_min, port_range_max=rule.port_max,
                remote_ip_prefix=str(rule.remote), security_group_id=group.id, tenant_id=project_id,
                opts=opts)
        groups[name] = group
    return groups
