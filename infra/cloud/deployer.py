"""What the stack needs of the deploying identity: its user, its project, and that project's RBAC quota.

Every `access_as_external` grant of the stack is created by the deploying provider, so Neutron
counts it against the deploying project's `rbac_policy` quota, which defaults to 10 per project;
provincial-cloud alone grants 10 (one per department), and the project usually owns some
already (each external network's wildcard grant). The program raises that quota, before the
grants, to this stack's grants plus `rbacQuotaReserve` (room for the grants it does not manage).
It never lowers it (the current value is read first), leaves an unlimited quota (-1) alone, and
leaves the quota as it is on destroy (the provider's quota resource only forgets it).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_openstack as openstack

from .tenancy import Roles

UNLIMITED = -1


@dataclass(frozen=True)
class Deployer:
    user_id: str
    project_id: str
    rbac_quota: int
    """The deploying project's current rbac_policy quota (-1: unlimited)."""


def lookup_deployer() -> Deployer:
    """The deploying identity, read from the cloud when the program starts (preview included)."""
    scope = openstack.identity.get_auth_scope(name="deployer")
    quota = openstack.networking.get_quota_v2(project_id=scope.project_id)
    return Deployer(scope.user_id, scope.project_id, int(quota.rbac_policy))


def rbac_quota_needed(grants: int, reserve: int, current: int) -> int | None:
    """The deploying project's rbac_policy quota to set, or None to leave it alone (unlimited)."""
    if current == UNLIMITED:
        return None
    return max(current, grants + reserve)


def raise_rbac_quota(deployer: Deployer, grants: int, reserve: int) -> list[pulumi.Resource]:
    """The quota resource the grants must wait for (none when the quota is unlimited)."""
    value = rbac_quota_needed(grants, reserve, deployer.rbac_quota)
    if value is None:
        return []
    return [openstack.networking.QuotaV2(
        "deployer-rbac-quota", project_id=deployer.project_id, rbac_policy=value,
        opts=pulumi.ResourceOptions(retain_on_delete=True))]


def lookup_roles(operator_role: str, deployer_role: str, deployer: Deployer) -> Roles:
    return Roles(
        operator_role_id=openstack.identity.get_role_output(name=operator_role).id,
        deployer_role_id=openstack.identity.get_role_output(name=deployer_role).id,
        deployer_user_id=deployer.user_id,
    )
