"""The main job on the built-in lab, end to end (`fjmig demo`).

Lab up from the plans, approve every gated cutover (as operator `demo`), run every step, write the
compliance report, then lab down (even after a failure or Ctrl-C) unless asked to keep it.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from .errors import FjmigError
from .execution import runs
from .execution.executor import Event, RunSummary
from .journal import Journal
from .plans.steps import build_graph
from .plans.valid import load_valid


@dataclass
class DemoResult:
    summary: RunSummary
    status: dict[str, Any]
    journal: Path
    report: Path
    seconds: float


def run_demo(plans_dir: str, state: Path, *, keep: bool = False, parallel: int = 4, scale: float | None = None,
             on_event: Callable[[Event], None] = lambda e: None, say: Callable[[str], None] = lambda text: None,
             on_stopping: Callable[[], None] = lambda: None, execution_nodes: bool = False) -> DemoResult:
    """Migrate PLANS_DIR's plans on a lab of their own, with the journal and report in STATE
    (`execution_nodes`: on a lab whose jobs run on execution nodes, lab_up's)."""
    from .lab import lab_down, lab_up

    plans = load_valid(plans_dir)
    lab_dir, journal_path = lab_dir_for(state), state / "journal.db"
    _clear(state, journal_path)
    started = time.monotonic()
    say(f"lab up: {len(plans.departments)} departments from {plans_dir} ...")
    lab_kwargs: dict[str, Any] = {"held": not keep,  # a killed demo's lab is removed by the next one
                                  "execution_nodes": execution_nodes}
    if scale is not None:
        lab_kwargs["scale_mb_per_gb"] = scale
    lab_up(plans, lab_dir, **lab_kwargs)
    try:
        say(f"lab up in {time.monotonic() - started:.1f} s; state in {lab_dir}")
        with Journal.open(journal_path) as journal:
            for step in build_graph(plans).steps.values():
                if step.approval:
                    journal.approve(step.id, "demo")
        options = runs.options_for(journal_path, parallel=parallel, operator="demo",
                                      enforce_windows=False)  # the lab is a rehearsal
        summary = runs.run(plans, runs.lab_targets(lab_dir), journal_path, options, on_event, on_stopping)
        report = write_report(plans, journal_path, state / "report.html")
        return DemoResult(summary, runs.status(plans, journal_path), journal_path, report,
                          time.monotonic() - started)
    finally:
        if keep:
            say(f"lab kept: fjmig lab status --state-dir {lab_dir}; fjmig lab down --state-dir {lab_dir}")
        else:
            try:
                lab_down(lab_dir)
                say("lab down")
            except Exception as exc:  # never hide the run's own outcome behind a cleanup error
                raise FjmigError(f"lab down failed: {exc}; run 'fjmig lab down --state-dir {lab_dir}'") from exc


def _clear(state: Path, journal_path: Path) -> None:
    """A demo starts from nothing: the previous demo's journal, logs and job dirs go."""
    for stale in (journal_path, journal_path.with_name("journal.db-wal"), journal_path.with_name("journal.db-shm"),
                  runs.logs_dir(journal_path), runs.jobs_dir(journal_path).parent):
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()
    state.mkdir(parents=True, exist_ok=True)


def lab_dir_for(state: Path) -> Path:
    """The demo's lab lives beside its journal, unless that is under a directory every lab host
    mounts its own copy of (a clone in /root, say): then under /var/lib/fjmig."""
    from .lab.state import FORBIDDEN_STATE_ROOTS

    resolved = state.resolve()
    if any(resolved == root or root in resolved.parents for root in FORBIDDEN_STATE_ROOTS):
        return Path("/var/lib/fjmig/demo-lab")
    return state / "lab"


def write_report(plans: Any, journal_path: Path, target: Path) -> Path:
    """The compliance report after the run, as a self-contained HTML page."""
    from .plans.rules import Options
    from .plans.schedule import CST
    from .review.report import scorecard
    from .review.report_html import render_html

    report, _ = scorecard(plans, Options(start=datetime.now(CST).date()), journal_path)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(render_html(report), encoding="utf-8")
    tmp.replace(target)
    return target
