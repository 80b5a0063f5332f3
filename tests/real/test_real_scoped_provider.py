"""The provider scoped to a department's project (what creates instances and volumes) scopes with either
credential source: a network created through it belongs to the project. The loopback cloud has no Nova
compute or Cinder, so a network stands in for them here; the provider's token is the same."""

from __future__ import annotations

import os
from pathlib import Path

import pulumi
import pulumi_openstack as openstack
import pytest
from pulumi import automation as auto

from infra.cloud.credentials import credentials, scoped_provider_args

from .harness import Cloud, credentials_env


def program() -> None:
    config = pulumi.Config("openstack")
    creds = credentials({"cloud": config.get("cloud"), "region": config.get("region")}, os.environ)
    scope = openstack.identity.get_auth_scope(name="deployer")
    project = openstack.identity.Project("scoped-check", name=f"scoped-check-{pulumi.get_stack()}")
    admin = openstack.identity.get_role(name="admin")
    grant = openstack.identity.RoleAssignment("scoped-check-deployer", user_id=scope.user_id,
                                              project_id=project.id, role_id=admin.id)
    provider = openstack.Provider("scoped-check", **scoped_provider_args(creds, project.id),
                                  opts=pulumi.ResourceOptions(depends_on=[grant]))
    network = openstack.networking.Network("scoped-check-net", name=f"scoped-check-net-{pulumi.get_stack()}",
                                           opts=pulumi.ResourceOptions(provider=provider))
    pulumi.export("project_id", project.id)
    pulumi.export("network_id", network.id)


@pytest.mark.parametrize("mode", ["clouds", "env"])
def test_the_scoped_provider_creates_in_the_department_project(
        mode: str, cloud: Cloud, engine_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith(("OS_", "PULUMI_"))]:
        monkeypatch.delenv(key)
    for key, value in credentials_env(engine_env, cloud, mode).items():
        monkeypatch.setenv(key, value)
    (tmp_path / "Pulumi.yaml").write_text("name: scoped-check\nruntime: python\n", encoding="utf-8")
    stack = auto.create_or_select_stack(mode.replace("_", "-"), project_name="scoped-check", program=program,
                                        opts=auto.LocalWorkspaceOptions(work_dir=str(tmp_path)))
    if mode == "clouds":
        stack.set_config("openstack:cloud", auto.ConfigValue("loopback"))
    conn = cloud.connect()
    try:
        result = stack.up(on_output=lambda line: None)
        project_id = result.outputs["project_id"].value
        network = conn.network.get_network(result.outputs["network_id"].value)
        assert network.project_id == project_id != conn.current_project_id
    finally:
        stack.destroy(on_output=lambda line: None)
        stack.workspace.remove_stack(stack.name)
    assert conn.identity.find_project(f"scoped-check-{mode.replace('_', '-')}") is None
