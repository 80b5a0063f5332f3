"""The real tier's harness: the Pulumi engine offline, the loopback cloud, a project copy, openstacksdk.

Plain functions, so that the fixtures in conftest.py stay short and a developer can drive the same
steps from a Python prompt.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts" / "real-cloud"
OPENSTACK_VERSION = "5.5.1"
PROJECT_FILES = ("Pulumi.yaml", "infra", "policy", "orchestrator", "migration_plans")
EXCLUDE_NO_COMPUTE = (
    "**openstack:compute/instance:Instance::**",
    "**openstack:blockstorage/**",
)
"""What the loopback cloud cannot create (no nova-compute, Glance, Cinder): instances, volumes and
block-storage quotas; `--exclude-dependents` takes the volume attachments with them."""
LOOPBACK = ("127.0.0.1:5000", "127.0.0.1:9696", "127.0.0.1:8774")


@dataclass(frozen=True)
class Engine:
    """The `pulumi` CLI (with pulumi-language-python next to it) and the provider plugin binary."""

    bin_dir: Path
    plugin: Path


@dataclass(frozen=True)
class Cloud:
    """A running loopback cloud: its directory, clouds.yaml (cloud `loopback`) and OS_* variables."""

    directory: Path
    clouds_yaml: Path
    openrc: dict[str, str]

    def connect(self) -> Any:
        import openstack

        return openstack.connect(
            auth_url=self.openrc["OS_AUTH_URL"], username=self.openrc["OS_USERNAME"],
            password=self.openrc["OS_PASSWORD"], project_name=self.openrc["OS_PROJECT_NAME"],
            user_domain_name="Default", project_domain_name="Default", region_name="RegionOne",
            identity_api_version="3")


def find_engine() -> Engine | None:
    """The user's own pulumi + plugin, or the cached build (scripts/real-cloud/engine.sh find)."""
    proc = subprocess.run(["bash", str(SCRIPTS / "engine.sh"), "find"], capture_output=True, text=True, check=False)
    lines = proc.stdout.split()
    if proc.returncode != 0 or len(lines) != 2:
        return None
    return Engine(Path(lines[0]), Path(lines[1]))


def offline_env(engine: Engine, state: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for `pulumi` with no internet: a file backend and PULUMI_HOME under `state`, no
    update check, no plugin download, no registry lookup; the venv's Python for the program."""
    env = {k: v for k, v in (os.environ if base is None else base).items()
           if not k.startswith(("OS_", "PULUMI_"))}
    (state / "backend").mkdir(parents=True, exist_ok=True)
    (state / "home").mkdir(parents=True, exist_ok=True)
    env.update({
        "PATH": os.pathsep.join([str(engine.bin_dir), str(Path(sys.executable).parent), env.get("PATH", "")]),
        "PULUMI_HOME": str(state / "home"),
        "PULUMI_BACKEND_URL": f"file://{state / 'backend'}",
        "PULUMI_CONFIG_PASSPHRASE": "real-tier-not-secret",
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "PULUMI_DISABLE_REGISTRY_RESOLVE": "true",
        "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true",
        "PULUMI_SKIP_CONFIRMATIONS": "true",
        "PULUMI_DIY_BACKEND_NO_LEGACY_WARNING": "true",
        "PULUMI_SUPPRESS_NEO_LINK": "true",
        "PULUMI_PYTHON_CMD": sys.executable,
        "NO_COLOR": "1",
    })
    return env


def install_plugin(engine: Engine, env: Mapping[str, str]) -> None:
    """Put the provider binary into this PULUMI_HOME at the exact version the SDK asks for."""
    run(["pulumi", "plugin", "install", "resource", "openstack", OPENSTACK_VERSION, "--file", str(engine.plugin)],
        env, cwd=Path(env["PULUMI_HOME"]))


def credentials_env(env: Mapping[str, str], cloud: Cloud, mode: str) -> dict[str, str]:
    """`env` with the cloud's credentials the way users supply them: `clouds` (clouds.yaml, the stack
    names the entry in openstack:cloud; set by `select_stack`), `os_cloud` (clouds.yaml chosen by
    OS_CLOUD) or `env` (OS_* variables, an admin-openrc)."""
    out = dict(env)
    if mode in ("clouds", "os_cloud"):
        out["OS_CLIENT_CONFIG_FILE"] = str(cloud.clouds_yaml)
        if mode == "os_cloud":
            out["OS_CLOUD"] = "loopback"
    else:
        out.update(cloud.openrc)
    return out


def copy_project(target: Path) -> Path:
    """A writable copy of the Pulumi project (pulumi writes the stack file: encryptionsalt, config)."""
    target.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(source, target / name)
    for stack_file in ROOT.glob("Pulumi.*.yaml"):
        shutil.copy2(stack_file, target / stack_file.name)
    return target


def run(argv: Sequence[str], env: Mapping[str, str], cwd: Path, check: bool = True,
        timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} exited {proc.returncode}\n--- stdout\n{proc.stdout[-6000:]}"
                             f"\n--- stderr\n{proc.stderr[-4000:]}")
    return proc


class Stack:
    """One stack of a project copy, driven through the `pulumi` CLI as an ops engineer runs it."""

    def __init__(self, project: Path, name: str, env: Mapping[str, str], mode: str) -> None:
        self.project, self.name, self.env, self.mode = project, name, dict(env), mode

    def pulumi(self, *args: str, check: bool = True, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        return run(["pulumi", *args, "--stack", self.name, "--non-interactive"], self.env, self.project, check=check,
                   timeout=timeout)

    def select(self, cloud: Cloud) -> Stack:
        """`pulumi stack select --create`, then the provider config for the credential mode."""
        run(["pulumi", "stack", "select", "--create", self.name, "--non-interactive"], self.env, self.project)
        if self.mode == "clouds":
            self.pulumi("config", "set", "openstack:cloud", "loopback")
        self.pulumi("config", "set", "openstack:region", "RegionOne")
        return self

    def preview(self, *extra: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.pulumi("preview", "--policy-pack", "policy", *extra, check=check)

    def preview_json(self, *extra: str) -> dict[str, Any]:
        """`pulumi preview --json`: the steps the engine would take."""
        proc = self.pulumi("preview", "--json", *extra)
        return json.loads(proc.stdout)

    def up(self, *extra: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.pulumi("up", "--yes", "--skip-preview", "--policy-pack", "policy", *exclude_args(), *extra,
                           check=check)

    def destroy(self, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.pulumi("destroy", "--yes", "--skip-preview", check=check)

    def outputs(self) -> dict[str, Any]:
        return json.loads(self.pulumi("stack", "output", "--json").stdout)

    def resources(self) -> list[dict[str, Any]]:
        state = json.loads(self.pulumi("stack", "export").stdout)
        return state["deployment"].get("resources") or []


def exclude_args() -> list[str]:
    out = []
    for pattern in EXCLUDE_NO_COMPUTE:
        out += ["--exclude", pattern]
    return [*out, "--exclude-dependents"]
