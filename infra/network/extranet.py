"""`Extranet`: the extranet's VLAN segments as provider networks, with their bandwidth as QoS.

Vertical segments link the levels (province -> city -> county); horizontal segments join the
departments of one level. No segment is created `external` or `shared`: Neutron turns
`external: true` into a wildcard RBAC policy for every project. Instead a tenant project gets
`access_as_external` on its own level's horizontal segment by an RBAC policy (created by its
`DepartmentTenancy`), which makes the segment external for that project alone, so that its
router can use it as the gateway.

QoS policies carry no tags: Neutron (21, Zed) rejects the provider's replace-all tags call on a
QoS policy with `400 Invalid tags body` (it accepts it on networks and subnets). The segment's
tags are on its network and subnet, and the policy's description names them.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_openstack as openstack

from ..settings import Extranet as ExtranetSettings
from ..settings import Segment

TYPE = "digital-fujian:network:Extranet"


@dataclass(frozen=True)
class SegmentResources:
    segment: Segment
    network: openstack.networking.Network
    subnet: openstack.networking.Subnet
    qos: openstack.networking.QosPolicy


@dataclass(frozen=True)
class ExtranetArgs:
    settings: ExtranetSettings


def pool(segment: Segment) -> tuple[str, str]:
    """Router gateway addresses come from the upper half of the segment."""
    half = segment.cidr.num_addresses // 2
    return str(segment.cidr.network_address + half), str(segment.cidr.broadcast_address - 1)


def segment_tags(segment: Segment) -> list[str]:
    return [f"extranet={segment.kind}", f"level={segment.level}", f"city={segment.city or 'none'}"]


class Extranet(pulumi.ComponentResource):
    """The stack's extranet segments (from config): `<name>-<segment>` networks with subnets and QoS."""

    segments: dict[str, SegmentResources]

    def __init__(self, name: str, args: ExtranetArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        self.segments = {s.name: self._segment(name, s, args.settings.physical_network)
                         for s in args.settings.segments}
        self.register_outputs({
            key: {"network_id": r.network.id, "subnet_id": r.subnet.id, "cidr": str(r.segment.cidr),
                  "vlan": r.segment.vlan, "bandwidth_mbps": r.segment.bandwidth_mbps}
            for key, r in self.segments.items()
        })

    def _segment(self, prefix: str, segment: Segment, physical_network: str) -> SegmentResources:
        opts = pulumi.ResourceOptions(parent=self)
        name = f"{prefix}-{segment.name}"
        tags = segment_tags(segment)
        qos = openstack.networking.QosPolicy(
            f"{name}-qos", name=f"{name}-qos",
            description=f"extranet bandwidth upgrade: {segment.bandwidth_mbps} Mbit/s ({' '.join(tags)})",
            shared=False, opts=opts)
        for direction in ("egress", "ingress"):
            openstack.networking.QosBandwidthLimitRule(
                f"{name}-qos-{direction}", qos_policy_id=qos.id, direction=direction,
                max_kbps=segment.bandwidth_mbps * 1000, max_burst_kbps=segment.burst_kb, opts=opts)
        network = openstack.networking.Network(
            name, name=name, description=f"extranet {segment.kind} segment, VLAN {segment.vlan}",
            shared=False, admin_state_up=True, qos_policy_id=qos.id, tags=tags,
            segments=[openstack.networking.NetworkSegmentArgs(
                network_type="vlan", physical_network=physical_network, segmentation_id=segment.vlan)],
            opts=opts)
        start, end = pool(segment)
        subnet = openstack.networking.Subnet(
            f"{name}-subnet", name=f"{name}-subnet", network_id=network.id, cidr=str(segment.cidr), ip_version=4,
            gateway_ip=str(segment.gateway), enable_dhcp=False,
            allocation_pools=[openstack.networking.SubnetAllocationPoolArgs(start=start, end=end)],
            tags=tags, opts=opts)
        return SegmentResources(segment, network, subnet, qos)
