"""The address plan: allocations come from a reviewed file and never move when departments come or go."""

from __future__ import annotations

import subprocess
import sys
from ipaddress import IPv4Network, ip_network
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.addresses import (
    check_allocations,
    dump_allocations,
    load_allocations,
    propose,
    stack_config,
)
from infra.errors import InfraError
from infra.mockrun import run_shipped_stack, run_stack
from infra.settings import Settings, parse_settings
from orchestrator.plans.loader import load_plans
from tests.support import ROOT

ADDRESSES = ROOT / "infra" / "addresses.yaml"
pytestmark = pytest.mark.filterwarnings("ignore:openstack.index:DeprecationWarning")


def department(dept_id: str, *, systems: int = 3, cidr: str = "172.22.0.0/24", zombie: bool = True) -> dict[str, Any]:
    """A minimal valid province-level department plan for the provincial cloud."""
    census = {"function": "service", "scope": "department", "frequency": "daily", "approved_by": "省发改委",
              "approved_on": "2015-01-01", "funding_source": "fiscal"}
    items = [{"id": f"svc{i}", "name": f"系统{i}", **census, "classification": "unclassified", "status": "active",
              "host": f"{dept_id}-app01", "data": {"path": f"/srv/svc{i}", "size_gb": 20 * (i + 1)}, "share": i == 0}
             for i in range(systems)]
    if zombie:
        items.append({"id": "old", "name": "旧系统", **census, "classification": "unclassified", "status": "zombie",
                      "host": f"{dept_id}-app01", "data": {"path": "/srv/old", "size_gb": 5}, "share": False})
    return {
        "version": 1,
        "department": {"id": dept_id, "name": f"测试厅 {dept_id}", "level": "province", "city": None, "kind": "agency"},
        "datacenter": {"id": f"{dept_id}-dc", "hosts": [f"{dept_id}-app01"]},
        "target": "provincial-cloud",
        "systems": items,
        "private_networks": [{"id": f"{dept_id}-net", "cidr": cidr, "systems": [f"svc{i}" for i in range(systems)],
                              "migrate_to": "extranet"}],
    }


def write_plan(plans: Path, plan: dict[str, Any]) -> None:
    path = plans / f"{plan['department']['id']}.yaml"
    path.write_text(yaml.safe_dump(plan, allow_unicode=True, sort_keys=False), encoding="utf-8")


def settings_for(stack: str, **overrides: Any) -> Settings:
    config = stack_config(stack)
    config.update(overrides)
    return parse_settings(config)


def test_the_shipped_plan_covers_every_stack_and_is_stable() -> None:
    allocations = load_allocations(ADDRESSES)
    plans = load_plans(ROOT / "migration_plans")
    for stack in ("provincial-cloud", "social-enterprise-cloud", "municipal-dc-fuzhou", "municipal-dc-xiamen",
                  "municipal-dc-pingtan"):
        settings = settings_for(stack)
        assert check_allocations(plans, allocations, settings, ADDRESSES) == allocations[stack]
        assert propose(plans, allocations, settings) == {}
    assert ADDRESSES.read_text(encoding="utf-8") == dump_allocations(allocations)


def test_a_department_without_an_allocation_fails_clearly(plans_copy: Path) -> None:
    write_plan(plans_copy, department("fj-newdept"))
    with pytest.raises(InfraError, match=r"no subnet for fj-newdept in scope provincial-cloud: run "
                                         r"`python -m infra.addresses allocate"):
        run_stack("provincial-cloud", {"plans": str(plans_copy)})


def test_adding_a_department_moves_no_other_address(plans_copy: Path, tmp_path: Path) -> None:
    # The new department's private network sits on the next free block: the proposal must skip it.
    write_plan(plans_copy, department("fj-newdept", systems=5, cidr="10.64.2.128/26"))
    plans = load_plans(plans_copy)
    settings = settings_for("provincial-cloud", plans=str(plans_copy))
    allocations = load_allocations(ADDRESSES)
    before = {scope: dict(entries) for scope, entries in allocations.items()}
    new = propose(plans, allocations, settings)
    assert list(new) == ["fj-newdept"]
    block = new["fj-newdept"]
    assert block == ip_network("10.64.2.192/26")
    assert allocations == before, "propose must not touch existing entries"
    allocations["provincial-cloud"].update(new)
    path = tmp_path / "addresses.yaml"
    path.write_text(dump_allocations(allocations), encoding="utf-8")

    run = run_stack("provincial-cloud", {"plans": str(plans_copy), "addresses": str(path)})
    shipped = run_shipped_stack("provincial-cloud")
    for dept, entry in shipped.outputs["tenancies"].items():
        assert run.outputs["tenancies"][dept]["subnet_cidr"] == entry["subnet_cidr"]
    for key, target in shipped.outputs["targets"].items():
        assert run.outputs["targets"][key] == target
    assert run.outputs["tenancies"]["fj-newdept"]["subnet_cidr"] == "10.64.2.192/26"
    new_targets = {k for k in run.outputs["targets"] if k.startswith("fj-newdept/")}
    assert new_targets == {f"fj-newdept/svc{i}" for i in range(5)}


def test_removing_a_department_moves_no_other_address(plans_copy: Path) -> None:
    plans = load_plans(plans_copy)
    referenced = {dep.split("/")[0] for p in plans.departments.values() for s in p.systems for dep in s.depends_on}
    referenced |= {p.department.parent for p in plans.departments.values() if p.department.parent}
    removable = sorted(p.id for p in plans.departments.values()
                       if p.target == "provincial-cloud" and p.id not in referenced)
    assert removable
    gone = removable[0]
    (plans_copy / f"{gone}.yaml").unlink()
    run = run_stack("provincial-cloud", {"plans": str(plans_copy)})
    shipped = run_shipped_stack("provincial-cloud")
    assert gone not in run.outputs["tenancies"]
    assert set(run.outputs["tenancies"]) == set(shipped.outputs["tenancies"]) - {gone}
    for dept, entry in run.outputs["tenancies"].items():
        assert entry["subnet_cidr"] == shipped.outputs["tenancies"][dept]["subnet_cidr"]
    for key, target in run.outputs["targets"].items():
        assert target == shipped.outputs["targets"][key]


@pytest.mark.parametrize(("dept", "cidr", "message"), [
    ("fj-aic", "10.65.0.0/26", r"fj-aic: 10\.65\.0\.0/26 is outside addressSpace 10\.64\.0\.0/16"),
    ("fj-aic", "10.64.0.0/28", r"fj-aic: 10\.64\.0\.0/28 is too small for 4 systems \(needs a /26\)"),
    ("fj-aic", "10.64.0.64/26", r"fj-aic: 10\.64\.0\.64/26 overlaps provincial-cloud/fj-audit"),
])
def test_a_bad_allocation_is_refused(dept: str, cidr: str, message: str) -> None:
    allocations = load_allocations(ADDRESSES)
    allocations["provincial-cloud"][dept] = ip_network(cidr)
    with pytest.raises(InfraError, match=message):
        check_allocations(load_plans(ROOT / "migration_plans"), allocations, settings_for("provincial-cloud"),
                          ADDRESSES)


def test_an_allocation_over_a_private_network_is_refused(plans_copy: Path) -> None:
    write_plan(plans_copy, department("fj-newdept", cidr="10.64.0.0/24"))
    with pytest.raises(InfraError, match=r"fj-aic: 10\.64\.0\.0/26 overlaps private network fj-newdept/fj-newdept-net"):
        run_stack("provincial-cloud", {"plans": str(plans_copy)})


def test_allocate_command_proposes_and_writes(plans_copy: Path, tmp_path: Path) -> None:
    write_plan(plans_copy, department("fj-newdept"))
    path = tmp_path / "addresses.yaml"
    path.write_text(ADDRESSES.read_text(encoding="utf-8"), encoding="utf-8")
    argv = [sys.executable, "-m", "infra.addresses", "allocate", "--stack", "provincial-cloud",
            "--plans", str(plans_copy), "--file", str(path)]
    dry = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.strip() == "provincial-cloud: fj-newdept: 10.64.2.128/26"
    assert path.read_text(encoding="utf-8") == ADDRESSES.read_text(encoding="utf-8")
    wrote = subprocess.run([*argv, "--write"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert wrote.returncode == 0, wrote.stderr
    after = load_allocations(path)
    before = load_allocations(ADDRESSES)
    assert after["provincial-cloud"].pop("fj-newdept") == IPv4Network("10.64.2.128/26")
    assert after == before


def test_allocate_command_reports_bad_input_without_a_traceback(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "infra.addresses", "allocate", "--stack", "provincial-cloud",
                             "--plans", str(tmp_path / "missing")], cwd=ROOT, capture_output=True, text=True,
                            check=False)
    assert result.returncode == 1
    assert "no such plans directory" in result.stderr
    assert "Traceback" not in result.stderr
    usage = subprocess.run([sys.executable, "-m", "infra.addresses", "allocate"], cwd=ROOT, capture_output=True,
                           text=True, check=False)
    assert usage.returncode == 2
