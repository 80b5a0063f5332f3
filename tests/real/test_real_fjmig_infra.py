"""`fjmig infra up` drives the same program through the Automation API (inline: no language host) against
the loopback cloud, and the outputs it writes name every target `fjmig run` expects; `fjmig infra outputs`
and `fjmig run --stack` (infra.automation.stack_outputs_file) give the same from the stack's state."""

from __future__ import annotations

import json
from ipaddress import ip_address
from pathlib import Path

import pytest

from infra.automation import stack_outputs_file
from orchestrator.execution.inventory import load_inventory
from orchestrator.plans.naming import service_port, target_host

from .cloudcheck import check_tenancies, layouts, leftovers
from .harness import EXCLUDE_NO_COMPUTE, Cloud, Stack, copy_project, credentials_env, run

STACK = "municipal-dc-pingtan"


def expected_targets(project: Path) -> dict[str, dict[str, object]]:
    """What `fjmig run` looks up for the stack: every migrating system of its departments."""
    out = {}
    for layout in layouts(STACK, project):
        for index, system in enumerate(layout.plan.systems):
            if system.migrates:
                out[f"{layout.dept}/{system.id}"] = {"host": target_host(layout.dept, system.id),
                                                     "port": service_port(index), "cidr": layout.cidr}
    return out


def test_fjmig_infra_up_writes_the_targets_fjmig_run_expects(
        cloud: Cloud, engine_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = copy_project(tmp_path / "project")
    env = credentials_env(engine_env, cloud, "env")
    work = tmp_path / "work"
    work.mkdir()
    excludes = [arg for pattern in EXCLUDE_NO_COMPUTE for arg in ("--exclude", pattern)]
    conn = cloud.connect()
    stack = Stack(project, STACK, env, "env")
    state: list = []
    projects: dict[str, str] = {}
    try:
        preview = run(["fjmig", "infra", "preview", "--stack", STACK, "--project", str(project), *excludes,
                       "--exclude-dependents", "--format", "json"], env, work)
        assert json.loads(preview.stdout)["changes"]["create"] > 0
        up = run(["fjmig", "infra", "up", "--stack", STACK, "--project", str(project), *excludes,
                  "--exclude-dependents"], env, work)
        assert "Traceback" not in up.stdout + up.stderr
        written = work / ".fjmig" / "stacks" / f"{STACK}.json"
        outputs = json.loads(written.read_text(encoding="utf-8"))
        expected = expected_targets(project)
        assert set(outputs["targets"]) == set(expected)
        for gid, target in outputs["targets"].items():
            assert target["host"] == expected[gid]["host"] and target["port"] == expected[gid]["port"]
            assert ip_address(target["address"]) in expected[gid]["cidr"]  # type: ignore[operator]
        projects = check_tenancies(conn, STACK, project)
        assert {d: t["project_id"] for d, t in outputs["tenancies"].items()} == projects

        again = run(["fjmig", "infra", "outputs", "--stack", STACK, "--project", str(project)], env, work)
        assert json.loads(again.stdout) == outputs
        for key, value in env.items():  # `fjmig run --stack` reads the state in-process
            monkeypatch.setenv(key, value)
        path = stack_outputs_file(STACK, project, work / "run")
        assert json.loads(path.read_text(encoding="utf-8")) == outputs
        inventory = work / "hosts.yml"
        inventory.write_text("all:\n  hosts:\n    ptadm-app01: {ansible_host: 127.0.0.1}\n", encoding="utf-8")
        loaded = load_inventory(inventory, [path])
        for gid, target in expected.items():
            assert loaded.target(gid)["host"] == target["host"]  # type: ignore[index]
        state = stack.resources()
    finally:
        stack.destroy(check=False)
        stack.pulumi("stack", "rm", "--yes", check=False)
    assert leftovers(conn, state, projects.values()) == []
