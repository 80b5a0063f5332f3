"""The real tier: the real Pulumi engine against a real OpenStack API on loopback (`make test-real`).

Every test here is marked `real` (tests/conftest.py). The tier's run starts one loopback cloud
(scripts/real-cloud/openstack.sh) and stops it at the end, checking that none of its processes is
left; the engine is the user's own `pulumi` + plugin or the cached build
(scripts/real-cloud/engine.sh). Where either is missing a test fails in CI (`CI` or
`FJMIG_REQUIRE_REAL` set, as `.ci/run` does) and skips, with the reason, elsewhere.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import processes

from .harness import LOOPBACK, SCRIPTS, Cloud, Engine, find_engine, install_plugin, offline_env


def required() -> bool:
    return any(os.environ.get(name, "").lower() not in ("", "0", "false") for name in ("CI", "FJMIG_REQUIRE_REAL"))


def unavailable(reason: str) -> None:
    """Fail in CI, skip (with the reason) elsewhere."""
    if required():
        pytest.fail(f"real tier required (CI/FJMIG_REQUIRE_REAL) but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="package")
def engine() -> Engine:
    found = find_engine()
    if found is None:
        unavailable("no Pulumi engine: run scripts/real-cloud/engine.sh ensure (or install pulumi and "
                    "`pulumi plugin install resource openstack 5.5.1`)")
    assert found is not None
    return found


@pytest.fixture(scope="package")
def engine_env(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The offline environment of the tier's run (file backend, PULUMI_HOME with the plugin installed)."""
    env = offline_env(engine, tmp_path_factory.mktemp("pulumi-state"))
    install_plugin(engine, env)
    return env


def _port_open(address: str) -> bool:
    host, port = address.split(":")
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, int(port))) == 0


def _openrc(path: Path) -> dict[str, str]:
    values = {}
    for word in path.read_text(encoding="utf-8").split():
        if "=" in word:
            key, value = word.split("=", 1)
            values[key] = value
    return values


@pytest.fixture(scope="package")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    """Keystone + Neutron + nova-api on loopback, fresh for the tier's run, stopped afterwards (or, with
    FJMIG_REAL_CLOUD=DIR, one that `openstack.sh start DIR` started and that stays up: for iterating)."""
    running = os.environ.get("FJMIG_REAL_CLOUD")
    if running:
        directory = Path(running)
        if not (directory / "openrc").is_file():
            unavailable(f"FJMIG_REAL_CLOUD={running}: no cloud there (openstack.sh start {running})")
        yield Cloud(directory, directory / "clouds.yaml", _openrc(directory / "openrc"))
        return
    if not shutil.which("keystone-manage") or not shutil.which("neutron-server"):
        unavailable("no OpenStack packages: run scripts/real-cloud/openstack.sh install (as root)")
    busy = [a for a in LOOPBACK if _port_open(a)]
    if busy:
        unavailable(f"{', '.join(busy)} in use: another loopback cloud is running")
    directory = tmp_path_factory.mktemp("cloud")
    script = str(SCRIPTS / "openstack.sh")
    proc = subprocess.run(["bash", script, "start", str(directory)], capture_output=True, text=True, check=False,
                          timeout=900)
    try:
        if proc.returncode != 0:
            pytest.fail(f"the loopback cloud did not start:\n{proc.stderr[-3000:]}", pytrace=False)
        yield Cloud(directory, directory / "clouds.yaml", _openrc(directory / "openrc"))
    finally:
        subprocess.run(["bash", script, "stop", str(directory)], capture_output=True, check=False, timeout=120)
        left = [pid for pid in processes() if _mentions(pid, str(directory))]
        assert not left, f"cloud processes left after stop: {left}"


def _mentions(pid: int, text: str) -> bool:
    try:
        return text.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
