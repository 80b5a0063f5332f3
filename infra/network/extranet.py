"""`Extranet`: the extranet's VLAN segments as provider networks, with their bandwidth as QoS.

Vertical segments link the levels (province -> city -> county); horizontal segments join the
departments of one level. No segment is created `external` or `shared`: Neutron turns
`external: true` into a wildcard RBAC policy for every project. Instead a tenant project gets
`access_as_external` on its own level's horizontal segment by an RBAC policy, which makes the
segment external for that project alone, so that its router can use it as the gateway.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_openstack as openstack

from ..settings import Extranet as ExtranetSettings
from ..settings import Segment


@dataclass(frozen=True)
class SegmentResources:
    segment: Segment
    network: openstack.networking.Network
    subnet: openstack.networking.Subnet
    qos: openstack.networking.QosPolicy


def pool(segment: Segment) -> tuple[str, str]:
    """Router gateway addresses come from the upper half of the segment."""
    half = segment.cidr.num_addresses // 2
    return str(segment.cidr.network_address + half), str(segment.cidr.broadcast_address - 1)


class Extranet(pulumi.ComponentResource):
    """The stack's extranet segments (from config) and the RBAC grants to tenant projects."""

    segments: dict[str, SegmentResources]

    def __init__(self, name: str, settings: ExtranetSettings, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("digital-fujian:network:Extranet", name, None, opts)
        self.segments = {s.name: self._segment(s, settings.physical_network) for s in settings.segments}
        self.register_outputs({
            name: {"network_id": r.network.id, "subnet_id": r.subnet.id, "cidr": str(r.segment.cidr),
                   "vlan": r.segment.vlan, "bandwidth_mbps": r.segment.bandwidth_mbps}
            for name, r in self.segments.items()
        })

    def _segment(self, segment: Segment, physical_network: str) -> SegmentResources:
        opts = pulumi.ResourceOptions(parent=self)
        name = f"extranet-{segment.name}"
        tags = [f"extranet={segment.kind}", f"level={segment.level}", f"city={segment.city or 'none'}"]
        qos = openstack.networking.QosPolicy(
            f"{name}-qos", name=f"{name}-qos",
            description=f"extranet bandwidth upgrade: {segment.bandwidth_mbps} Mbit/s", shared=False, tags=tags,
            opts=opts)
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

    def share(self, segment: str, dept: str, project_id: pulumi.Input[str]) -> openstack.networking.RbacPolicyV2:
        """Let one project's routers use `segment` as their gateway network."""
        return openstack.networking.RbacPolicyV2(
            f"extranet-{segment}-{dept}", action="access_as_external", object_type="network",
            object_id=self.segments[segment].network.id, target_tenant=project_id,
            opts=pulumi.ResourceOptions(parent=self))
