"""`BoundaryAccessPlatform`: the controlled crossing between the government information network
and the extranet.

A router with its gateway on the government information network (`externalNetwork`, which
exists already) and a fixed address on one extranet segment, plus the platform's own network for
its access gateways, whose security group admits only the flows declared in config.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_openstack as openstack

from ..settings import Boundary
from .extranet import SegmentResources

TYPE = "digital-fujian:network:BoundaryAccessPlatform"


@dataclass(frozen=True)
class BoundaryAccessPlatformArgs:
    settings: Boundary
    external_network: str
    """The government information network's existing external network (by name)."""
    segment: SegmentResources
    """The extranet segment the platform's router has its fixed address on."""


class BoundaryAccessPlatform(pulumi.ComponentResource):
    """`<name>-router`, `<name>-net`/`-subnet`, the `<name>-extranet` uplink port and `<name>-access` group."""

    router_id: pulumi.Output[str]
    network_id: pulumi.Output[str]
    security_group_id: pulumi.Output[str]

    def __init__(self, name: str, args: BoundaryAccessPlatformArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        settings, segment = args.settings, args.segment
        child = pulumi.ResourceOptions(parent=self)
        tags = ["boundary=access-platform"]
        gov = openstack.networking.get_network_output(name=args.external_network, external=True,
                                                      opts=pulumi.InvokeOptions(parent=self))
        router = openstack.networking.Router(
            f"{name}-router", name=f"{name}-router", external_network_id=gov.id, enable_snat=False,
            description="boundary secure access platform: government information network <-> extranet",
            tags=tags, opts=child)
        network = openstack.networking.Network(f"{name}-net", name=f"{name}-net", tags=tags, opts=child)
        subnet = openstack.networking.Subnet(
            f"{name}-subnet", name=f"{name}-subnet", network_id=network.id, cidr=str(settings.cidr), ip_version=4,
            gateway_ip=str(settings.cidr.network_address + 1), enable_dhcp=True, tags=tags, opts=child)
        openstack.networking.RouterInterface(f"{name}-router-platform", router_id=router.id, subnet_id=subnet.id,
                                             opts=child)
        uplink = openstack.networking.Port(
            f"{name}-extranet", name=f"{name}-extranet", network_id=segment.network.id,
            fixed_ips=[openstack.networking.PortFixedIpArgs(subnet_id=segment.subnet.id,
                                                             ip_address=str(settings.extranet_address))],
            tags=tags, opts=child)
        openstack.networking.RouterInterface(f"{name}-router-extranet", router_id=router.id, port_id=uplink.id,
                                             opts=child)
        group = openstack.networking.SecGroup(
            f"{name}-access", name=f"{name}-access", description="only the flows declared in config",
            tags=tags, opts=child)
        for flow in settings.flows:
            openstack.networking.SecGroupRule(
                f"{name}-access-{flow.name}", description=flow.name, direction="ingress", ethertype="IPv4",
                protocol=flow.protocol, port_range_min=flow.port_min, port_range_max=flow.port_max,
                remote_ip_prefix=str(flow.source), security_group_id=group.id, opts=child)
        self.router_id = router.id
        self.network_id = network.id
        self.security_group_id = group.id
        self.register_outputs({"router_id": self.router_id, "network_id": self.network_id,
                               "security_group_id": self.security_group_id, "cidr": str(settings.cidr)})
