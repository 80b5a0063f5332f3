"""`DepartmentTenancy`: everything one department's migrated systems land on."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_openstack as openstack

from ..layout import TenancyLayout
from .credentials import Credentials
from .hosts import HostContext, HostResources, create_host
from .identity import Roles, create_identity
from .quotas import create_quotas
from .security import create_security_groups

TYPE = "digital-fujian:cloud:DepartmentTenancy"
EXTRANET_TYPE = "digital-fujian:network:Extranet"

__all__ = ["DepartmentTenancy", "DepartmentTenancyArgs", "Roles"]


@dataclass(frozen=True)
class DepartmentTenancyArgs:
    """What a tenancy is built from: its layout, the looked-up roles, and its extranet segment."""

    layout: TenancyLayout
    roles: Roles
    extranet_network_id: pulumi.Input[str]
    """The horizontal extranet segment the department's router uses as its gateway."""
    image: str
    key_pair: str | None
    credentials: Credentials
    grant_depends_on: tuple[pulumi.Resource, ...] = ()
    """What the RBAC grant must wait for (the deploying project's rbac_policy quota)."""
    extranet: pulumi.Resource | None = None
    """The `Extranet` component, which parented the grant before it moved here (for its alias)."""


class DepartmentTenancy(pulumi.ComponentResource):
    """A Keystone project with quotas, a routed tenant network, security groups, the RBAC grant that
    makes its extranet segment usable as its router's gateway, and an instance with a data volume per
    active unclassified system (plus an archive host when the department has zombies).

    Neutron resources are created by the deploying (admin) provider on the department's behalf
    (`tenant_id`), which works whatever the credential source; instances and volumes, which
    Nova and Cinder create only in the token's project, through a provider scoped to the project.
    """

    project_id: pulumi.Output[str]
    network_id: pulumi.Output[str]
    subnet_id: pulumi.Output[str]
    router_id: pulumi.Output[str]
    subnet_cidr: str
    hosts: dict[str, HostResources]
    targets: dict[str, pulumi.Output[dict[str, object]]]
    """`<dept>/<system>` -> {host, address, port} for every system that moves here."""
    archive: pulumi.Output[dict[str, object]] | None
    summary: pulumi.Output[dict[str, object]]

    def __init__(self, name: str, args: DepartmentTenancyArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        layout = args.layout
        identity = create_identity(name, layout, args.roles, args.credentials, self)
        create_quotas(name, layout, identity.project.id, self)
        project_id = identity.project.id
        # Was `extranet-<segment>-<dept>` under the Extranet component: the aliases keep its URN.
        old_name = f"extranet-{layout.segment.name}-{name}"
        old_parent = args.extranet or pulumi.create_urn("extranet", EXTRANET_TYPE)
        grant = openstack.networking.RbacPolicyV2(
            f"{name}-extranet-{layout.segment.name}", action="access_as_external", object_type="network",
            object_id=args.extranet_network_id, target_tenant=project_id,
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.grant_depends_on),
                                        aliases=[pulumi.Alias(name=old_name, parent=old_parent)]))
        own = pulumi.ResourceOptions(parent=self)
        network = openstack.networking.Network(
            f"{name}-net", name=f"{name}-net", tenant_id=project_id, admin_state_up=True, tags=layout.tags, opts=own)
        subnet = openstack.networking.Subnet(
            f"{name}-subnet", name=f"{name}-subnet", tenant_id=project_id, network_id=network.id,
            cidr=str(layout.cidr), ip_version=4, gateway_ip=str(layout.gateway), enable_dhcp=True,
            allocation_pools=[openstack.networking.SubnetAllocationPoolArgs(
                start=str(layout.pool[0]), end=str(layout.pool[1]))],
            tags=layout.tags, opts=own)
        router = openstack.networking.Router(
            f"{name}-router", name=f"{name}-router", tenant_id=project_id,
            external_network_id=args.extranet_network_id, enable_snat=False, tags=layout.tags,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[grant]))
        openstack.networking.RouterInterface(f"{name}-router-interface", router_id=router.id, subnet_id=subnet.id,
                                             opts=own)
        groups = create_security_groups(layout, project_id, self)
        ctx = HostContext(network.id, subnet.id, project_id, groups, args.image, args.key_pair)
        self.hosts = {host.name: create_host(host, ctx, self, identity.provider) for host in layout.hosts}
        self.project_id = project_id
        self.network_id = network.id
        self.subnet_id = subnet.id
        self.router_id = router.id
        self.subnet_cidr = str(layout.cidr)
        self.targets = {
            f"{name}/{host.system.id}": self.hosts[host.name].address.apply(
                lambda address, h=host: {"host": h.name, "address": address, "port": h.port})
            for host in layout.system_hosts if host.system is not None
        }
        archive = layout.archive
        self.archive = None if archive is None else self.hosts[archive.name].address.apply(
            lambda address: {"host": archive.name, "address": address})
        self.summary = pulumi.Output.all(project_id, network.id).apply(lambda ids: {
            "project_id": ids[0],
            "network": f"{name}-net",
            "network_id": ids[1],
            "subnet_cidr": str(layout.cidr),
            "segment": layout.segment.name,
        })
        self.register_outputs({
            "project_id": self.project_id,
            "network_id": self.network_id,
            "subnet_id": self.subnet_id,
            "router_id": self.router_id,
            "subnet_cidr": self.subnet_cidr,
            "hosts": {n: h.instance.id for n, h in self.hosts.items()},
        })
