"""provincial-cloud, the biggest stack (~516 resources): `preview`, then `up` and `destroy`, each within
its budget (bench/README.md, "Real tier", has the measured times). Its ten `access_as_external` grants
and the government information network's wildcard grant are more than Neutron's default rbac_policy
quota of the deploying project (10): the program raises it first."""

from __future__ import annotations

import time
from pathlib import Path

from .cloudcheck import check_deployer_quota, check_extranet, check_tenancies, leftovers
from .harness import Cloud, Stack, copy_project, credentials_env

STACK = "provincial-cloud"
PREVIEW_BUDGET_S = 120
UP_BUDGET_S = 900
DESTROY_BUDGET_S = 600


def test_provincial_cloud_preview_up_and_destroy_within_budget(
        cloud: Cloud, engine_env: dict[str, str], tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    stack = Stack(project, STACK, credentials_env(engine_env, cloud, "env"), "env").select(cloud)
    conn = cloud.connect()
    projects: dict[str, str] = {}
    state: list = []
    start = time.monotonic()
    try:
        preview = stack.preview()
        preview_s = time.monotonic() - start
        assert "to create" in preview.stdout
        assert preview_s < PREVIEW_BUDGET_S, f"preview took {preview_s:.0f} s"
        start = time.monotonic()
        stack.up()
        up_s = time.monotonic() - start
        assert up_s < UP_BUDGET_S, f"up took {up_s:.0f} s"
        projects = check_tenancies(conn, STACK, project)
        assert len(projects) == 10
        check_extranet(conn, STACK, project, projects)
        check_deployer_quota(conn, grants=len(projects))
        boundary = conn.network.find_router("boundary-router")
        gov = conn.network.find_network("gov-information-network")
        assert boundary.external_gateway_info["network_id"] == gov.id
        state = stack.resources()
        print(f"\nprovincial-cloud: preview {preview_s:.0f} s, up {up_s:.0f} s, {len(state)} resources in state")
    finally:
        start = time.monotonic()
        stack.destroy()
        destroy_s = time.monotonic() - start
        stack.pulumi("stack", "rm", "--yes")
    print(f"provincial-cloud: destroy {destroy_s:.0f} s")
    assert destroy_s < DESTROY_BUDGET_S, f"destroy took {destroy_s:.0f} s"
    assert leftovers(conn, state, projects.values()) == []
