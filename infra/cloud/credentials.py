"""The provider scoped to one department's project, for each way users supply credentials.

Nova and Cinder create an instance or a volume in the project the token is scoped to (neither
takes a project id), so those go through a provider scoped to the department's project. The
OpenStack provider scopes by `tenant_id` only when its credentials come from the provider
config or `OS_*` variables: when they come from a clouds.yaml entry (`openstack:cloud`, or
`OS_CLOUD`), it takes the entry's project and ignores `tenant_id` (gophercloud's clientconfig
uses the entry's auth as a whole). So with `openstack:cloud` the scoped provider gets the
entry's auth fields explicitly (the password as a secret) and the department's project id; and
`OS_CLOUD` is refused, because it overrides every provider's config from the environment.
Neutron resources do not need this: the deploying provider creates them with `tenant_id`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import yaml

from ..errors import InfraError

PASSWORD_AUTH_TYPES = (None, "password", "v3password")
AUTH_FIELDS = {  # clouds.yaml auth key -> provider argument
    "auth_url": "auth_url",
    "username": "user_name",
    "user_id": "user_id",
    "password": "password",
    "user_domain_name": "user_domain_name",
    "user_domain_id": "user_domain_id",
    "domain_name": "user_domain_name",
    "domain_id": "user_domain_id",
}


@dataclass(frozen=True)
class Credentials:
    """Where the deploying identity's credentials come from: a clouds.yaml entry, or the environment."""

    cloud: str | None
    region: str | None
    entry: Mapping[str, Any] | None = None
    """The clouds.yaml entry of `cloud` (secure.yaml merged in)."""


def clouds_yaml_paths(environ: Mapping[str, str], cwd: Path) -> list[Path]:
    """Where the OpenStack clients look for clouds.yaml, in their order."""
    paths = [Path(environ["OS_CLIENT_CONFIG_FILE"])] if environ.get("OS_CLIENT_CONFIG_FILE") else []
    home = Path(environ.get("HOME") or Path.home())
    return [*paths, cwd / "clouds.yaml", home / ".config/openstack/clouds.yaml", Path("/etc/openstack/clouds.yaml")]


def _load(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise InfraError(f"{path}: not valid YAML ({exc})") from None
    clouds = data.get("clouds") if isinstance(data, dict) else None
    if not isinstance(clouds, dict):
        raise InfraError(f"{path}: has no `clouds:` mapping")
    return clouds


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) \
            else value
    return out


def cloud_entry(cloud: str, environ: Mapping[str, str], cwd: Path) -> dict[str, Any]:
    """The clouds.yaml entry `cloud`, with the matching secure.yaml entry merged over it."""
    for path in clouds_yaml_paths(environ, cwd):
        if path.is_file():
            clouds = _load(path)
            if cloud not in clouds:
                raise InfraError(f"config openstack:cloud: {path} has no cloud {cloud!r} "
                                 f"(it has: {', '.join(sorted(clouds)) or 'none'})")
            secure = path.with_name("secure.yaml")
            entry = clouds[cloud]
            if secure.is_file():
                entry = _merge(entry, _load(secure).get(cloud) or {})
            return entry
    searched = ", ".join(str(p) for p in clouds_yaml_paths(environ, cwd))
    raise InfraError(f"config openstack:cloud: {cloud!r}, but there is no clouds.yaml (searched {searched})")


def credentials(openstack_config: Mapping[str, Any], environ: Mapping[str, str] | None = None,
                cwd: Path | None = None) -> Credentials:
    """How this run authenticates; refuses the one way the scoped providers cannot be scoped."""
    environ = os.environ if environ is None else environ
    cwd = Path.cwd() if cwd is None else cwd
    cloud = openstack_config.get("cloud") or None
    region = openstack_config.get("region") or None
    if environ.get("OS_CLOUD"):
        raise InfraError(
            f"OS_CLOUD={environ['OS_CLOUD']} makes every OpenStack provider of the stack use that clouds.yaml entry's "
            f"project, so instances and volumes would be created in the deploying project instead of each "
            f"department's. Name the entry in the stack config instead: `pulumi config set openstack:cloud "
            f"{environ['OS_CLOUD']}` and `unset OS_CLOUD` (or use OS_* variables)")
    if cloud is None:
        return Credentials(None, region)
    entry = cloud_entry(str(cloud), environ, cwd)
    auth_type = entry.get("auth_type")
    if auth_type not in PASSWORD_AUTH_TYPES:
        raise InfraError(f"config openstack:cloud: {cloud!r} authenticates with {auth_type}, which is bound to one "
                         f"project; the per-department providers need password credentials (auth_type: password)")
    return Credentials(str(cloud), region or entry.get("region_name"), entry)


def scoped_provider_args(creds: Credentials, project_id: pulumi.Input[str]) -> dict[str, Any]:
    """The arguments of an `openstack.Provider` whose token is scoped to `project_id`."""
    args: dict[str, Any] = {"tenant_id": project_id, "region": creds.region}
    if creds.entry is None:  # OS_* variables: the provider reads them and tenant_id overrides the project
        return args
    auth = creds.entry.get("auth") or {}
    for key, arg in AUTH_FIELDS.items():
        if auth.get(key) and arg not in args:
            args[arg] = pulumi.Output.secret(str(auth[key])) if key == "password" else str(auth[key])
    if creds.entry.get("cacert"):
        args["cacert_file"] = str(creds.entry["cacert"])
    if creds.entry.get("verify") is False:
        args["insecure"] = True
    interface = creds.entry.get("interface") or creds.entry.get("endpoint_type")
    if interface:
        args["endpoint_type"] = str(interface)
    return args
