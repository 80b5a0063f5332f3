"""`BoundaryAccessPlatform`: the controlled crossing between the government information network
and the extranet.

A router with its gateway on the government information network (`externalNetwork`, which
exists already) and a fixed address on one extranet segment, plus the platform's own network for
its access gateways, whose security group admits only the flows declared in config.
"""

from __future__ import annotations

import pulumi
import pulumi_openstack as openstack

from ..settings import Boundary
from .extranet import SegmentResources

NAME = "boundary"


class BoundaryAccessPlatform(pulumi.ComponentResource):
    router_id: pulumi.Output[str]
    security_group_id: pulumi.Output[str]

    def __init__(self, settings: Boundary, *, external_network: str, segment: SegmentResources,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("digital-fujian:network:BoundaryAccessPlatform", NAME, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = ["boundary=access-platform"]
        gov = openstack.networking.get_network_output(name=external_network, external=True, opts=pulumi.InvokeOptions(
            parent=self))
        router = openstack.networking.Router(
            f"{NAME}-router", name=f"{NAME}-router", external_network_id=gov.id, enable_snat=False,
            description="boundary secure access platform: government information network <-> extranet",
            tags=tags, opts=child)
        network = openstack.networking.Network(f"{NAME}-net", name=f"{NAME}-net", tags=tags, opts=child)
        subnet = openstack.networking.Subnet(
            f"{NAME}-subnet", name=f"{NAME}-subnet", network_id=network.id, cidr=str(settings.cidr), ip_version=4,
            gateway_ip=str(settings.cidr.network_address + 1), enable_dhcp=True, tags=tags, opts=child)
        openstack.networking.RouterInterface(f"{NAME}-router-platform", router_id=router.id, subnet_id=subnet.id,
                                             opts=child)
        uplink = openstack.networking.Port(
            f"{NAME}-extranet", name=f"{NAME}-extranet", network_id=segment.network.id,
            fixed_ips=[openstack.networking.PortFixedIpArgs(subnet_id=segment.subnet.id,
                                                             ip_address=str(settings.extranet_address))],
            tags=tags, opts=child)
        openstack.networking.RouterInterface(f"{NAME}-router-extranet", router_id=router.id, port_id=uplink.id,
                                             opts=child)
        group = openstack.networking.SecGroup(
            f"{NAME}-access", name=f"{NAME}-access", description="only the flows declared in config",
            tags=tags, opts=child)
        for flow in settings.flows:
            openstack.networking.SecGroupRule(
                f"{NAME}-access-{flow.name}", description=flow.name, direction="ingress", ethertype="IPv4",
                protocol=flow.protocol, port_range_min=flow.port_min, port_range_max=flow.port_max,
                remote_ip_prefix=str(flow.source), security_group_id=group.id, opts=child)
        self.router_id = router.id
        self.security_group_id = group.id
        self.register_outputs({"router_id": router.id, "network_id": network.id, "security_group_id": group.id,
                               "cidr": str(settings.cidr)})
