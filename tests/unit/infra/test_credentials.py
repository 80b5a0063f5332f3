"""How the per-department provider authenticates, for each way users supply OpenStack credentials,
and the deploying project's RBAC quota rule (plain functions: no Pulumi runtime needed)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pulumi
import pytest

from infra.cloud.credentials import Credentials, credentials, scoped_provider_args
from infra.cloud.deployer import rbac_quota_needed
from infra.errors import InfraError

CLOUDS = """
clouds:
  fujian:
    auth:
      auth_url: https://keystone.fj.example:5000/v3
      username: deployer
      user_domain_name: Default
      project_name: admin
      project_domain_name: Default
    region_name: RegionOne
    interface: internal
    cacert: /etc/ssl/fj-ca.pem
  appcred:
    auth_type: v3applicationcredential
    auth:
      auth_url: https://keystone.fj.example:5000/v3
      application_credential_id: x
      application_credential_secret: y
"""
SECURE = "clouds:\n  fujian:\n    auth:\n      password: from-secure-yaml\n"


@pytest.fixture
def clouds(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "clouds.yaml").write_text(CLOUDS, encoding="utf-8")
    (tmp_path / "secure.yaml").write_text(SECURE, encoding="utf-8")
    return {"OS_CLIENT_CONFIG_FILE": str(tmp_path / "clouds.yaml"), "HOME": str(tmp_path)}


def run(coro: Any) -> Any:
    return asyncio.get_event_loop().run_until_complete(coro)


def test_os_variables_scope_by_project_id_alone(tmp_path: Path) -> None:
    creds = credentials({"region": "RegionOne"}, {"OS_AUTH_URL": "https://k/v3", "HOME": str(tmp_path)}, tmp_path)
    assert creds == Credentials(None, "RegionOne")
    assert scoped_provider_args(creds, "dept-id") == {"tenant_id": "dept-id", "region": "RegionOne"}


def test_a_clouds_yaml_entry_is_given_explicitly_with_the_department_project(
        clouds: dict[str, str], tmp_path: Path) -> None:
    asyncio.set_event_loop(asyncio.new_event_loop())  # Output.secret schedules on the current loop
    creds = credentials({"cloud": "fujian"}, clouds, tmp_path)
    args = scoped_provider_args(creds, "dept-id")
    password = args.pop("password")
    assert args == {"tenant_id": "dept-id", "region": "RegionOne", "auth_url": "https://keystone.fj.example:5000/v3",
                    "user_name": "deployer", "user_domain_name": "Default", "cacert_file": "/etc/ssl/fj-ca.pem",
                    "endpoint_type": "internal"}
    assert "project_name" not in args and "cloud" not in args  # either would override tenant_id
    assert isinstance(password, pulumi.Output)
    assert run(password.is_secret())
    assert run(password.future()) == "from-secure-yaml"


def test_os_cloud_is_refused_with_what_to_do_instead(clouds: dict[str, str], tmp_path: Path) -> None:
    with pytest.raises(InfraError, match=r"OS_CLOUD=fujian makes every OpenStack provider .* "
                                         r"`pulumi config set openstack:cloud fujian` and `unset OS_CLOUD`"):
        credentials({}, {**clouds, "OS_CLOUD": "fujian"}, tmp_path)


@pytest.mark.parametrize(("cloud", "message"), [
    ("nowhere", r"has no cloud 'nowhere' \(it has: appcred, fujian\)"),
    ("appcred", r"authenticates with v3applicationcredential, which is bound to one project"),
])
def test_unusable_clouds_yaml_entries_are_refused(clouds: dict[str, str], tmp_path: Path, cloud: str,
                                                  message: str) -> None:
    with pytest.raises(InfraError, match=message):
        credentials({"cloud": cloud}, clouds, tmp_path)


def test_a_missing_clouds_yaml_names_where_it_was_looked_for(tmp_path: Path) -> None:
    with pytest.raises(InfraError, match=r"no clouds.yaml \(searched .*/clouds.yaml, .*\.config/openstack/clouds.yaml"):
        credentials({"cloud": "fujian"}, {"HOME": str(tmp_path)}, tmp_path)


@pytest.mark.parametrize(("grants", "reserve", "current", "expected"), [
    (10, 20, 10, 30),     # Neutron's default: raised
    (10, 20, 100, 100),   # already enough: never lowered
    (1, 20, 21, 21),      # the value a previous run set: unchanged, so a second `up` changes nothing
    (10, 20, -1, None),   # unlimited: left alone
])
def test_rbac_quota_rule(grants: int, reserve: int, current: int, expected: int | None) -> None:
    assert rbac_quota_needed(grants, reserve, current) == expected
