"""A plan change shows as the expected `pulumi preview` diff against deployed stacks: a new system adds
its resources, a department moving city leaves one stack and joins another, and the address plan keeps
every existing subnet where it is (no subnet, network or router of another department changes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .harness import Cloud, Stack, copy_project, credentials_env, run

NEW_SYSTEM = """
  - id: port-logistics
    name: 港口物流信息系统
    function: berth scheduling and container tracking
    scope: city
    frequency: daily
    approved_by: 厦门市发改委
    approved_on: 2016-06-01
    funding_source: fiscal
    classification: unclassified
    status: active
    host: xmtr-app01
    data: {path: /srv/port-logistics, size_gb: 30, daily_change_gb: 0.3}
    share: false
    themes: [transport]
    depends_on: [infra:municipal-dc-xiamen]
    cutover: {window: "2018-04-21T22:00+08:00/PT6H", approval: false}
"""
REPLACING = {"delete", "replace", "create-replacement", "delete-replaced", "discard", "discard-replaced"}


def steps(stack: Stack) -> dict[str, str]:
    """Logical name -> the engine's op for every resource of a `pulumi preview --json`."""
    out: dict[str, str] = {}
    for step in stack.preview_json()["steps"]:
        name = step["urn"].rsplit("::", 1)[-1]
        assert name not in out or step["op"] in REPLACING, (name, step["op"])
        out[name] = step["op"]
    return out


def change_plans(project: Path) -> None:
    plans = project / "migration_plans"
    xm = plans / "xm-transport.yaml"
    text = xm.read_text(encoding="utf-8")
    xm.write_text(text.replace("\nprivate_networks:", NEW_SYSTEM + "\nprivate_networks:", 1), encoding="utf-8")
    fz = plans / "fz-aic.yaml"
    fz.write_text(fz.read_text(encoding="utf-8").replace("  city: fuzhou\n", "  city: xiamen\n", 1),
                  encoding="utf-8")


def scopes(project: Path) -> dict[str, Any]:
    return yaml.safe_load((project / "infra/addresses.yaml").read_text(encoding="utf-8"))["scopes"]


def test_a_new_system_and_a_department_moving_city_preview_as_expected(
        cloud: Cloud, engine_env: dict[str, str], tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    env = credentials_env(engine_env, cloud, "env")
    xiamen = Stack(project, "municipal-dc-xiamen", env, "env").select(cloud)
    fuzhou = Stack(project, "municipal-dc-fuzhou", env, "env").select(cloud)
    try:
        fuzhou.up()
        xiamen.up()
        before = scopes(project)
        change_plans(project)
        validate = run(["fjmig", "validate", "migration_plans", "--start", "2017-11-07", "--format", "json"],
                       env, project, check=False)
        assert validate.returncode == 0, validate.stdout[-3000:]
        refused = xiamen.preview(check=False)
        assert refused.returncode != 0 and "no subnet for fz-aic" in refused.stdout + refused.stderr
        run(["python", "-m", "infra.addresses", "allocate", "--stack", "municipal-dc-xiamen", "--write"], env, project)
        after = scopes(project)
        for scope, entries in before.items():
            for dept, cidr in entries.items():
                assert after[scope][dept] == cidr, f"{scope}/{dept} moved"
        assert set(after["municipal-dc-xiamen"]) == {"xm-transport", "fz-aic"}

        ops = steps(xiamen)
        changed = {name: op for name, op in ops.items() if op != "same"}
        assert not set(changed.values()) & REPLACING, changed
        for name in ("xm-transport-net", "xm-transport-subnet", "xm-transport-router", "xm-transport-baseline",
                     "xm-transport-taxi-supervision", "extranet-horizontal-xiamen"):
            assert ops[name] == "same", (name, ops[name])
        new_system = {n for n, op in changed.items() if op == "create" and n.startswith("xm-transport-port-logistics")}
        assert {"xm-transport-port-logistics", "xm-transport-port-logistics-data",
                "xm-transport-port-logistics-0"} <= new_system
        moved_in = {n for n, op in changed.items() if op == "create" and n.startswith("fz-aic")}
        assert {"fz-aic", "fz-aic-net", "fz-aic-subnet", "fz-aic-router",
                "fz-aic-extranet-horizontal-xiamen"} <= moved_in
        updated = {n for n, op in changed.items() if op == "update"}
        assert updated <= {"xm-transport-compute", "xm-transport-network", "xm-transport-volume",
                           "digital-fujian-municipal-dc-xiamen"}, updated

        ops = steps(fuzhou)
        changed = {name: op for name, op in ops.items() if op != "same"}
        assert {n for n, op in changed.items() if op != "delete"} <= {"digital-fujian-municipal-dc-fuzhou"}, changed
        assert all(n.startswith("fz-aic") for n, op in changed.items() if op == "delete"), changed
        assert {"fz-aic-net", "fz-aic-subnet", "fz-aic-router", "fz-aic"} <= set(changed)
        for name in ("fz-minhou-hrss-net", "fz-minhou-hrss-subnet", "fz-minhou-hrss-router"):
            assert ops[name] == "same", (name, ops[name])
    finally:
        for stack in (xiamen, fuzhou):
            stack.destroy(check=False)
            stack.pulumi("stack", "rm", "--yes", check=False)
