"""`fjmig infra`: the command line over infra.automation. What needs no engine is tested here (a stack
whose plans or config do not validate is refused before the engine starts); the engine runs in
tests/real/test_real_fjmig_infra.py."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import ROOT

FJMIG = [sys.executable, "-m", "orchestrator"]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The Pulumi project's inputs (no program: the checks run before it)."""
    target = tmp_path / "project"
    (target / "infra").mkdir(parents=True)
    for path in [ROOT / "Pulumi.yaml", *ROOT.glob("Pulumi.*.yaml")]:
        shutil.copy2(path, target / path.name)
    shutil.copy2(ROOT / "infra" / "addresses.yaml", target / "infra" / "addresses.yaml")
    shutil.copytree(ROOT / "migration_plans", target / "migration_plans")
    return target


def fjmig(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FJMIG, *args], cwd=cwd, capture_output=True, text=True, check=False,
                          env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1", "HOME": str(cwd)})


@pytest.mark.parametrize("action", ["preview", "up"])
def test_a_stack_whose_plans_do_not_validate_is_refused(project: Path, action: str) -> None:
    plan = project / "migration_plans" / "fj-aic.yaml"
    plan.write_text(plan.read_text(encoding="utf-8").replace("host: aic-db01", "host: aic-db09", 1), encoding="utf-8")
    proc = fjmig("infra", action, "--stack", "provincial-cloud", "--project", str(project), cwd=project)
    assert proc.returncode == 1
    assert "fj-aic.yaml:" in proc.stderr and "error[unknown-reference]: system 'registry': host 'aic-db09'" \
        in proc.stderr
    assert "Traceback" not in proc.stderr and "\x1b[" not in proc.stderr


def test_bad_stack_config_is_refused_naming_the_key(project: Path) -> None:
    path = project / "Pulumi.municipal-dc-xiamen.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("[10.127.0.0/16, 172.21.0.0/16]", "[0.0.0.0/0]"),
                    encoding="utf-8")
    proc = fjmig("infra", "preview", "--stack", "municipal-dc-xiamen", "--project", str(project), cwd=project)
    assert proc.returncode == 1
    assert "config digital-fujian:clientCidrs: '0.0.0.0/0' admits the whole internet" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_an_unknown_stack_names_the_known_ones(project: Path) -> None:
    proc = fjmig("infra", "up", "--stack", "municipal-dc-shanghai", "--project", str(project), cwd=project)
    assert proc.returncode == 1
    assert "no stack 'municipal-dc-shanghai'" in proc.stderr and "municipal-dc-xiamen" in proc.stderr


def test_a_bad_command_line_exits_2(project: Path) -> None:
    proc = fjmig("infra", "destroy", "--stack", "x", cwd=project)
    assert proc.returncode == 2
