"""`DepartmentTenancy`: everything one department's migrated systems land on."""

from __future__ import annotations

from collections.abc import Callable

import pulumi
import pulumi_openstack as openstack

from ..layout import TenancyLayout
from .hosts import HostContext, HostResources, create_host
from .identity import Roles, create_identity
from .quotas import create_quotas
from .security import create_security_groups

ShareExtranet = Callable[[str, pulumi.Input[str]], pulumi.Resource]
"""(department id, project id) -> the RBAC policy that lets the project's router use its extranet segment."""

__all__ = ["DepartmentTenancy", "Roles", "ShareExtranet"]


class DepartmentTenancy(pulumi.ComponentResource):
    """A Keystone project with quotas, a routed tenant network, security groups, and an instance with a
    data volume per active unclassified system (plus an archive host when the department has zombies)."""

    project_id: pulumi.Output[str]
    network_id: pulumi.Output[str]
    subnet_cidr: str
    hosts: dict[str, HostResources]

    def __init__(self, layout: TenancyLayout, *, roles: Roles, extranet_network_id: pulumi.Input[str],
                 share_extranet: ShareExtranet, image: str, key_pair: str | None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("digital-fujian:cloud:DepartmentTenancy", layout.dept, None, opts)
        dept = layout.dept
        identity = create_identity(layout, roles, self)
        create_quotas(layout, identity.project.id, self)
        rbac = share_extranet(dept, identity.project.id)
        scoped = pulumi.ResourceOptions(parent=self, provider=identity.provider)
        network = openstack.networking.Network(
            f"{dept}-net", name=f"{dept}-net", admin_state_up=True, tags=layout.tags, opts=scoped)
        subnet = openstack.networking.Subnet(
            f"{dept}-subnet", name=f"{dept}-subnet", network_id=network.id, cidr=str(layout.cidr), ip_version=4,
            gateway_ip=str(layout.gateway), enable_dhcp=True,
            allocation_pools=[openstack.networking.SubnetAllocationPoolArgs(
                start=str(layout.pool[0]), end=str(layout.pool[1]))],
            tags=layout.tags, opts=scoped)
        router = openstack.networking.Router(
            f"{dept}-router", name=f"{dept}-router", external_network_id=extranet_network_id, enable_snat=False,
            tags=layout.tags, opts=pulumi.ResourceOptions(parent=self, provider=identity.provider, depends_on=[rbac]))
        openstack.networking.RouterInterface(f"{dept}-router-interface", router_id=router.id, subnet_id=subnet.id,
                                             opts=scoped)
        groups = create_security_groups(layout, self, identity.provider)
        ctx = HostContext(network.id, subnet.id, groups, image, key_pair)
        self.hosts = {host.name: create_host(host, ctx, self, identity.provider) for host in layout.hosts}
        self.project_id = identity.project.id
        self.network_id = network.id
        self.subnet_cidr = str(layout.cidr)
        self.layout = layout
        self.register_outputs({
            "project_id": self.project_id,
            "network_id": network.id,
            "subnet_id": subnet.id,
            "router_id": router.id,
            "subnet_cidr": self.subnet_cidr,
            "hosts": {name: h.instance.id for name, h in self.hosts.items()},
        })

    def targets(self) -> dict[str, pulumi.Output[dict[str, object]]]:
        """`<dept>/<system>` -> {host, address, port} for every system that moves here."""
        out = {}
        for host in self.layout.system_hosts:
            assert host.system is not None
            resources = self.hosts[host.name]
            out[f"{self.layout.dept}/{host.system.id}"] = resources.address.apply(
                lambda address, h=host: {"host": h.name, "address": address, "port": h.port})
        return out

    def archive(self) -> pulumi.Output[dict[str, object]] | None:
        host = self.layout.archive
        if host is None:
            return None
        return self.hosts[host.name].address.apply(lambda address: {"host": host.name, "address": address})

    def summary(self) -> pulumi.Output[dict[str, object]]:
        return pulumi.Output.all(self.project_id, self.network_id).apply(lambda ids: {
            "project_id": ids[0],
            "network": f"{self.layout.dept}-net",
            "network_id": ids[1],
            "subnet_cidr": self.subnet_cidr,
            "segment": self.layout.segment.name,
        })
