"""An instance with a fixed address and its data volume.

The port carries the fixed address and the security groups (ports take group ids); the
instance boots on that port, so its address is known before it exists.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_openstack as openstack

from ..layout import Host


@dataclass(frozen=True)
class HostResources:
    port: openstack.networking.Port
    instance: openstack.compute.Instance
    volume: openstack.blockstorage.Volume

    @property
    def address(self) -> pulumi.Output[str]:
        return self.port.fixed_ips.apply(lambda ips: ips[0].ip_address)  # type: ignore[index]


@dataclass(frozen=True)
class HostContext:
    network_id: pulumi.Input[str]
    subnet_id: pulumi.Input[str]
    project_id: pulumi.Input[str]
    groups: dict[str, openstack.networking.SecGroup]
    image: str
    key_pair: str | None


def create_host(host: Host, ctx: HostContext, parent: pulumi.Resource,
                provider: pulumi.ProviderResource) -> HostResources:
    """The port is the department's by `tenant_id`; the instance and the volume are created through the
    provider scoped to the department's project (Nova and Cinder take no project id)."""
    opts = pulumi.ResourceOptions(parent=parent, provider=provider)
    metadata = dict(tag.split("=", 1) for tag in host.tags)
    port = openstack.networking.Port(
        host.name, name=host.name, network_id=ctx.network_id, tenant_id=ctx.project_id,
        fixed_ips=[openstack.networking.PortFixedIpArgs(subnet_id=ctx.subnet_id, ip_address=str(host.address))],
        security_group_ids=[ctx.groups[g].id for g in host.groups], tags=list(host.tags),
        opts=pulumi.ResourceOptions(parent=parent))
    instance = openstack.compute.Instance(
        host.name, name=host.name, flavor_name=host.flavor.name, image_name=ctx.image, key_pair=ctx.key_pair,
        networks=[openstack.compute.InstanceNetworkArgs(port=port.id)], tags=list(host.tags), metadata=metadata,
        opts=opts)
    volume = openstack.blockstorage.Volume(
        host.volume_name, name=host.volume_name, size=host.volume_gb, metadata=metadata,
        description=f"data of {host.name}", opts=opts)
    openstack.compute.VolumeAttach(host.volume_name, instance_id=instance.id, volume_id=volume.id, opts=opts)
    return HostResources(port, instance, volume)
