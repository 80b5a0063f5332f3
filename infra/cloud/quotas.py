"""Compute, network and block-storage quotas, sized from the tenancy's usage plus headroom.

Floating IPs are a Neutron quota (zero: tenancies are reached over the extranet, never by NAT);
security groups are counted by Neutron too, not by Nova.
"""

from __future__ import annotations

import pulumi
import pulumi_openstack as openstack

from ..layout import TenancyLayout


def create_quotas(name: str, layout: TenancyLayout, project_id: pulumi.Input[str], parent: pulumi.Resource) -> None:
    q = layout.quotas
    opts = pulumi.ResourceOptions(parent=parent)
    openstack.compute.QuotaSetV2(
        f"{name}-compute", project_id=project_id, instances=q.instances, cores=q.cores, ram=q.ram_mb, opts=opts)
    openstack.networking.QuotaV2(
        f"{name}-network", project_id=project_id, network=q.networks, subnet=q.subnets, router=q.routers,
        port=q.ports, security_group=q.security_groups, security_group_rule=q.security_group_rules,
        floatingip=0, opts=opts)
    openstack.blockstorage.QuoteSetV3(  # sic: the provider's name for the block-storage quota set
        f"{name}-volume", project_id=project_id, volumes=q.volumes, gigabytes=q.gigabytes,
        snapshots=q.volumes, opts=opts)
