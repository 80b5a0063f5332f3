"""A plan change shows as the expected `pulumi preview` diff against deployed stacks: a new system adds
its resources, a department moving city leaves one stack and joins another, and the address plan keeps
every existing subnet where it is (no subnet, network or router of another department changes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .harness import Cloud, Stack, copy_project, credentials_env, exclude_args, run

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
MOVED = ("fz-aic", "archive-fz-aic")
"""The moving department's resources (its archive host is named archive-<dept>)."""
REPLACING = {"delete", "replace", "create-replacement", "delete-replaced", "discard", "discard-replaced"}


def key(urn: str) -> tuple[str, str]:
    """(type token, logical name) of a URN: names repeat across types (a port, its instance, its group)."""
    parts = urn.split("::")
    return parts[2].split("$")[-1], parts[3]


def steps(stack: Stack) -> dict[tuple[str, str], str]:
    """(type, name) -> the engine's op for every resource a `pulumi preview --json` changes (unchanged
    ones are not listed), with the same exclusions as `up`."""
    return {key(step["urn"]): step["op"] for step in stack.preview_json(*exclude_args())["steps"]}


NET, SUBNET, ROUTER, GROUP, RULE, PORT = (f"openstack:networking/{t}" for t in (
    "network:Network", "subnet:Subnet", "router:Router", "secGroup:SecGroup", "secGroupRule:SecGroupRule",
    "port:Port"))
PROJECT, RBAC = "openstack:identity/project:Project", "openstack:networking/rbacPolicyV2:RbacPolicyV2"


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
        deployed = {key(r["urn"]) for stack in (xiamen, fuzhou) for r in stack.resources()}
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
        changed = {k: op for k, op in ops.items() if op != "same"}
        assert not set(changed.values()) & REPLACING, changed
        for unchanged in ((NET, "xm-transport-net"), (SUBNET, "xm-transport-subnet"), (ROUTER, "xm-transport-router"),
                          (GROUP, "xm-transport-baseline"), (PORT, "xm-transport-taxi-supervision"),
                          (NET, "extranet-horizontal-xiamen")):
            assert unchanged in deployed and unchanged not in changed, (unchanged, ops.get(unchanged))
        created = {k for k, op in changed.items() if op == "create"}
        assert {(PORT, "xm-transport-port-logistics"), (GROUP, "xm-transport-port-logistics"),
                (RULE, "xm-transport-port-logistics-0")} <= created
        assert {(PROJECT, "fz-aic"), (NET, "fz-aic-net"), (SUBNET, "fz-aic-subnet"), (ROUTER, "fz-aic-router"),
                (RBAC, "fz-aic-extranet-horizontal-xiamen")} <= created
        assert sorted(n for _, n in created if not n.startswith((*MOVED, "xm-transport-port-logistics"))) == []
        updated = {name for (_, name), op in changed.items() if op == "update"}
        assert updated <= {"xm-transport-compute", "xm-transport-network", "digital-fujian-municipal-dc-xiamen"}, \
            updated

        ops = steps(fuzhou)
        changed = {k: op for k, op in ops.items() if op != "same"}
        assert {name for (_, name), op in changed.items() if op != "delete"} <= {"digital-fujian-municipal-dc-fuzhou"}
        assert sorted(n for (_, n), op in changed.items() if op == "delete" and not n.startswith(MOVED)) == []
        assert {(NET, "fz-aic-net"), (SUBNET, "fz-aic-subnet"), (ROUTER, "fz-aic-router"), (PROJECT, "fz-aic")} \
            <= set(changed)
        for unchanged in ((NET, "fz-minhou-hrss-net"), (SUBNET, "fz-minhou-hrss-subnet"),
                          (ROUTER, "fz-minhou-hrss-router")):
            assert unchanged in deployed and unchanged not in changed, (unchanged, ops.get(unchanged))
    finally:
        for stack in (xiamen, fuzhou):
            stack.destroy(check=False)
            stack.pulumi("stack", "rm", "--yes", check=False)
