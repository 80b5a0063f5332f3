"""The step-kind table (plans/kinds.py) is what the jobs use and what docs/EXECUTION.md says."""

from __future__ import annotations

import re
from pathlib import Path

from orchestrator.execution.jobs import build_job
from orchestrator.plans.kinds import KINDS, UNTIL_KINDS, selected_by_until
from orchestrator.plans.loader import load_plans
from orchestrator.plans.steps import Step, build_graph
from tests.support import MINI, ROOT
from tests.support.inventory import mini_inventory


def documented_playbooks() -> dict[str, tuple[str, str, set[str]]]:
    """docs/EXECUTION.md's playbook table: kind -> (playbook, hosts, extra variables)."""
    text = (ROOT / "docs" / "EXECUTION.md").read_text(encoding="utf-8")
    rows = {}
    for line in text.splitlines():
        match = re.match(r"^\| `([a-z]+)` \| `([a-z]+\.yml)` \| ([^|]+) \| (.+) \|$", line)
        if match:
            kind, playbook, hosts, variables = match.groups()
            rows[kind] = (playbook, hosts.strip(), set(re.findall(r"(?:^|, )`([a-z_]+)`", variables)))
    return rows


def test_the_documented_playbook_table_is_the_kind_table() -> None:
    documented = documented_playbooks()
    declared = {k.name: (k.playbook, k.hosts, set(k.variables)) for k in KINDS.values() if k.playbook}
    assert documented == declared
    for kind in declared:
        assert (ROOT / "playbooks" / f"{kind}.yml").is_file()


def test_every_job_gets_exactly_its_kinds_variables(tmp_path: Path) -> None:
    plans = load_plans(MINI)
    inventory = mini_inventory(plans, tmp_path / "inventory.json")
    seen = set()
    steps = [s for s in build_graph(plans).steps.values() if s.kind != "milestone"]
    steps.append(Step(id="t-hub/registry:rollback", kind="rollback", dept="t-hub", subject="registry", deadline=None))
    for step in steps:
        job = build_job(step, plans, inventory)
        assert job.playbook == KINDS[step.kind].playbook
        assert set(job.extravars) == {"fjmig_step", *KINDS[step.kind].variables}, step.id
        seen.add(step.kind)
    assert seen == {k for k, kind in KINDS.items() if kind.playbook}


def test_until_ranks() -> None:
    assert UNTIL_KINDS == ("presync", "decommission", "cutover", "verify", "share", "retire", "close")
    assert selected_by_until("decommission", "presync") and not selected_by_until("cutover", "presync")
    assert not selected_by_until("milestone", None) and not selected_by_until("rollback", None)
    assert all(selected_by_until(kind, None) for kind in UNTIL_KINDS)
