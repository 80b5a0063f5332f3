"""A mistake in the user's input, run through the real `pulumi` CLI and the Python language host: one
clear message naming the file/line and rule (or what to change), and no Python traceback."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .harness import Cloud, Stack, copy_project, credentials_env


def preview_once(stack: Stack) -> tuple[subprocess.CompletedProcess[str], str]:
    """`pulumi preview` of a stack created for it and removed after; the process and its output."""
    stack.pulumi("stack", "select", "--create")
    try:
        proc = stack.preview(check=False)
    finally:
        stack.pulumi("stack", "rm", "--yes", check=False)
    return proc, proc.stdout + proc.stderr


def test_invalid_plans_stop_pulumi_preview_with_the_finding_and_no_traceback(
        engine_env: dict[str, str], tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    plan = project / "migration_plans" / "fj-aic.yaml"
    plan.write_text(plan.read_text(encoding="utf-8").replace("host: aic-db01", "host: aic-db09", 1), encoding="utf-8")
    proc, text = preview_once(Stack(project, "provincial-cloud", engine_env, "env"))
    assert proc.returncode != 0
    assert "fj-aic.yaml:" in text and "error[unknown-reference]: system 'registry': host 'aic-db09'" in text, text
    assert "nothing is built until `fjmig validate` passes" in text
    assert "Traceback" not in text and 'File "' not in text, text


def test_os_cloud_is_refused_before_anything_is_built(
        cloud: Cloud, engine_env: dict[str, str], tmp_path: Path) -> None:
    project = copy_project(tmp_path / "project")
    proc, text = preview_once(Stack(project, "municipal-dc-xiamen", credentials_env(engine_env, cloud, "os_cloud"),
                                    "os_cloud"))
    assert proc.returncode != 0
    assert "OS_CLOUD=loopback" in text and "pulumi config set openstack:cloud loopback" in text, text
    assert "Traceback" not in text, text
    assert cloud.connect().identity.find_project("xm-transport") is None
