"""`pulumi preview` and `pulumi up` of municipal-dc-xiamen through the CLI, as an ops engineer runs them
(Pulumi.yaml, the stack file, `--policy-pack policy`), with either credential source; then the cloud
itself is asked, through openstacksdk, what was built; a second `up` changes nothing; `destroy` leaves
nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from .cloudcheck import check_deployer_quota, check_extranet, check_tenancies, leftovers, snapshot
from .harness import Cloud, Stack, copy_project, credentials_env

STACK = "municipal-dc-xiamen"


@pytest.mark.parametrize("mode", ["clouds", "env"])
def test_xiamen_up_builds_what_the_plans_say_in_the_departments_projects(
        mode: str, cloud: Cloud, engine_env: dict[str, str], tmp_path: Path) -> None:
    """clouds: clouds.yaml with the entry named in `openstack:cloud`; env: OS_* variables."""
    project = copy_project(tmp_path / "project")
    stack = Stack(project, STACK, credentials_env(engine_env, cloud, mode), mode).select(cloud)
    conn = cloud.connect()
    try:
        preview = stack.preview()
        assert "to create" in preview.stdout and "Traceback" not in preview.stdout + preview.stderr
        up = stack.up()
        assert "Traceback" not in up.stdout + up.stderr
        projects = check_tenancies(conn, STACK, project)
        check_extranet(conn, STACK, project, projects)
        check_deployer_quota(conn, grants=len(projects))
        outputs = stack.outputs()
        assert {d: t["project_id"] for d, t in outputs["tenancies"].items()} == projects
        before = snapshot(conn, projects.values())
        stack.up("--expect-no-changes")
        assert snapshot(conn, projects.values()) == before
        state = stack.resources()
    finally:
        stack.destroy()
        stack.pulumi("stack", "rm", "--yes")
    assert leftovers(conn, state, projects.values()) == []
