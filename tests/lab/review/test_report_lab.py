"""The report after a real run on the lab counts what the journal says."""

from __future__ import annotations

import subprocess
from datetime import date
from pathlib import Path

import pytest

from orchestrator.journal import Journal
from orchestrator.plans.loader import load_plans
from orchestrator.plans.rules import Options, validate
from orchestrator.plans.steps import build_graph
from orchestrator.review.report import build_report, load_progress
from tests.support import MINI


@pytest.mark.skipif(__import__("os").geteuid() != 0, reason="the lab needs root (network namespaces)")
def test_report_after_a_lab_run(tmp_path: Path) -> None:
    """The executor migrates the mini plans on a real lab; the report counts what its journal says."""
    import os
    import sys

    from orchestrator.lab import running_lab

    journal = tmp_path / "journal.db"
    plans = load_plans(MINI)
    with Journal.open(journal) as opened:
        for step in build_graph(plans).steps.values():
            if step.approval:
                opened.approve(step.id, "tester")
    with running_lab(MINI, tmp_path / "lab", name="fjrep", index=6):
        done = subprocess.run([sys.executable, "-m", "orchestrator", "run", str(MINI), "--lab", str(tmp_path / "lab"),
                               "--journal", str(journal)], capture_output=True, text=True, timeout=900,
                              env={**os.environ, "NO_COLOR": "1"})
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    validation = validate(plans, Options(start=date(2017, 11, 7)))
    report = build_report(plans, validation, load_progress(journal))
    moving = sum(1 for _, s in plans.systems.values() if s.migrates)
    sharing = sum(1 for _, s in plans.systems.values() if s.migrates and s.share)
    province = report.province.scores
    assert (province["moved"].done, province["moved"].total) == (moving, moving)
    assert (province["shared"].done, province["shared"].total) == (sharing, sharing)
    for key in ("zombies", "moved", "shared", "networks", "datacenter"):
        score = province[key]
        assert score.total > 0 and score.done == score.total, key
        assert score.verdict == "late", key  # the lab runs today, years after the policy's deadlines
    assert report.share.done == sharing and report.share.verdict == "met"
    assert report.gantt == []
    assert all(b.actual[-1][1] == 0 for b in report.burndown if b.total)
