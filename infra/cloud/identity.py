"""Keystone: the department's project, its operator group, and a provider scoped to the project.

Instances and volumes belong to the project that the creating token is scoped to, so they are
created through a provider scoped to the department's project (`credentials.py` says how it is
scoped for each credential source); the deploying user gets `deployerRole` on the project first.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_openstack as openstack

from ..layout import TenancyLayout
from .credentials import Credentials, scoped_provider_args


@dataclass(frozen=True)
class Roles:
    """Ids looked up once per stack: the operator and deployer roles and the deploying user."""

    operator_role_id: pulumi.Input[str]
    deployer_role_id: pulumi.Input[str]
    deployer_user_id: pulumi.Input[str]


@dataclass(frozen=True)
class Identity:
    project: openstack.identity.Project
    group: openstack.identity.GroupV3
    provider: openstack.Provider


def create_identity(name: str, layout: TenancyLayout, roles: Roles, creds: Credentials,
                    parent: pulumi.Resource) -> Identity:
    dept = layout.plan.department
    opts = pulumi.ResourceOptions(parent=parent)
    project = openstack.identity.Project(
        name, name=dept.id, description=f"{dept.name} ({dept.id}): migrated systems", tags=layout.tags, opts=opts)
    group = openstack.identity.GroupV3(
        f"{name}-operators", name=f"{dept.id}-operators", description=f"Operators of {dept.name}", opts=opts)
    openstack.identity.RoleAssignment(
        f"{name}-operators", group_id=group.id, project_id=project.id, role_id=roles.operator_role_id, opts=opts)
    deployer = openstack.identity.RoleAssignment(
        f"{name}-deployer", user_id=roles.deployer_user_id, project_id=project.id,
        role_id=roles.deployer_role_id, opts=opts)
    provider = openstack.Provider(
        f"{name}-scoped", **scoped_provider_args(creds, project.id),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[deployer]))
    return Identity(project, group, provider)
