"""Building small plan sets for the plan tests: valid department dicts, written as YAML files.

Every helper returns plain dicts (what a plan author writes), so that a test can break exactly one
thing and check exactly one finding.
"""

from __future__ import annotations

import contextlib
import copy
import io
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from orchestrator.plans.loader import PlanSet, load_plans
from orchestrator.plans.rules import Options, Validation, validate
from orchestrator.plans.schedule import DurationModel

START = date(2017, 11, 7)
INFRA: dict[str, Any] = {
    "version": 1,
    "milestones": [
        {"id": "provincial-cloud", "ready": True},
        {"id": "municipal-dc-fuzhou", "ready": False, "due": date(2018, 4, 30)},
    ],
}


def system(sid: str, **overrides: Any) -> dict[str, Any]:
    """An active, unclassified system with every census field, on host `h-app`."""
    data: dict[str, Any] = {
        "id": sid,
        "name": f"系统 {sid}",
        "function": f"what {sid} does",
        "scope": "province",
        "frequency": "daily",
        "approved_by": "省发改委",
        "approved_on": date(2012, 5, 1),
        "funding_source": "fiscal",
        "classification": "unclassified",
        "status": "active",
        "host": "h-app",
        "data": {"path": f"/srv/{sid}", "size_gb": 10, "daily_change_gb": 1},
        "share": False,
    }
    data.update(overrides)
    return data


def department(did: str = "fj-test", systems: list[dict[str, Any]] | None = None, **overrides: Any) -> dict[str, Any]:
    """A province agency on the provincial cloud with one data center, two hosts and (by
    default) two systems `alpha` and `beta` on one extranet-bound private network."""
    prefix = did.replace("-", "")[:12]
    plan: dict[str, Any] = {
        "version": 1,
        "department": {
            "id": did,
            "name": f"部门 {did}",
            "level": "province",
            "city": None,
            "kind": "agency",
            "funding": None,
            "parent": None,
            "owner": {"name": "张伟", "contact": "ops@example.org"},
        },
        "datacenter": {"id": f"{prefix}-dc", "hosts": ["h-app", "h-db"]},
        "target": "provincial-cloud",
        "systems": systems if systems is not None else [system("alpha"), system("beta", host="h-db")],
        "private_networks": [],
    }
    if systems is None:
        plan["private_networks"] = [{
            "id": f"{prefix}-net", "cidr": "172.20.0.0/24", "systems": ["alpha", "beta"],
            "migrate_to": "extranet", "retain_approval": None,
        }]
    department_keys = {"name", "level", "city", "kind", "funding", "parent", "owner", "deadline"}
    for key, value in overrides.items():
        if key in department_keys:
            plan["department"][key] = value
        else:
            plan[key] = value
    return plan


def unique_hosts(plan: dict[str, Any]) -> dict[str, Any]:
    """Host names are global: prefix them with the department id (for multi-department sets)."""
    plan = copy.deepcopy(plan)
    did = plan["department"]["id"]
    if plan.get("datacenter"):
        plan["datacenter"]["hosts"] = [f"{did}-{h}" for h in plan["datacenter"]["hosts"]]
    for item in plan["systems"]:
        item["host"] = f"{did}-{item['host']}"
    return plan


def dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False)


def write_plans(root: Path, *plans: dict[str, Any], infra: dict[str, Any] | None = INFRA) -> Path:
    """Write each plan to `<department id>.yaml` (and infra.yaml unless infra is None)."""
    root.mkdir(parents=True, exist_ok=True)
    for plan in plans:
        (root / f"{plan['department']['id']}.yaml").write_text(dump(plan), encoding="utf-8")
    if infra is not None:
        (root / "infra.yaml").write_text(dump(infra), encoding="utf-8")
    return root


def check(root: Path, start: date = START, strict: bool = False, **model: Any) -> tuple[PlanSet, Validation]:
    plans = load_plans(root)
    return plans, validate(plans, Options(start=start, model=DurationModel(**model), strict=strict))


def rules(result: Validation, severity: str | None = None) -> list[str]:
    return [f.rule for f in result.findings if severity is None or f.severity == severity]


def cli(*argv: str) -> tuple[int, str, str]:
    """Run `fjmig ARGV` in-process: (exit status, stdout, stderr)."""
    from orchestrator.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(list(argv))
        except SystemExit as exc:  # argparse rejects a bad command line with SystemExit(2)
            status = exc.code if isinstance(exc.code, int) else 1
    return status, out.getvalue(), err.getvalue()


# Broken files of every kind the loader must turn into findings, never exceptions.
BROKEN: dict[str, bytes | str] = {
    "empty": "",
    "only a comment": "# nothing yet\n",
    "binary garbage": bytes(range(256)) * 64,
    "NUL bytes": "version: 1\n\x00\n",
    "a list where a mapping belongs": "- version\n- 1\n",
    "a scalar document": "just some words\n",
    "two documents": "version: 1\n---\nversion: 1\n",
    "tab indentation": "version: 1\ndepartment:\n\tid: x\n",
    "unclosed flow": "version: 1\nsystems: [\n",
    "python tag": "version: !!python/object/apply:os.system ['true']\n",
    "unknown local tag": "version: !include other.yaml\n",
    "deep nesting": "version: 1\nsystems: " + "[" * 990 + "]" * 990 + "\n",
    "beyond libyaml's depth": "version: 1\nsystems: " + "[" * 5000 + "]" * 5000 + "\n",
    "recursive alias": "version: 1\nsystems: &a [*a]\n",
    "billion laughs": "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                      "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
                      "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n",
    "unhashable key": "? [a, b]\n: c\n",
    "non-string keys": "version: 1\n1: one\n2017-01-01: day\n~: null\ntrue: yes\n",
    "systems is a mapping": "version: 1\nsystems: {a: 1}\n",
    "Latin-1 text": "version: 1\nname: caf\xe9\n".encode("latin-1"),
    "ten megabytes": "version: 1\n" + "# padding\n" * 1_050_000,
    "huge numbers": dump({**department("fj-x"), "version": 10**400}),
    "infinite size": dump(department("fj-x")).replace("size_gb: 10", "size_gb: .inf", 1),
    "window overflow": dump(department("fj-x")).replace(
        "share: false", "share: false\n  cutover: {window: '2017-12-09T22:00+08:00/P99999999D'}", 1),
}
