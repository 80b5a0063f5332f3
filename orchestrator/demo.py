"""`fjmig demo`: the main job on the built-in lab, end to end.

Lab up from the plans, approve every gated cutover (as operator `demo`), run every step, print
the status and write the report, then lab down (even after a failure or Ctrl-C) unless --keep.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path
from typing import Any

from .cli.common import UserError, console


def run_demo(args: argparse.Namespace) -> int:
    from .cli.run_cmds import _exit_status, _load_valid_plans, _print_summary, cmd_status, execute
    from .execution.executor import RunOptions
    from .execution.inventory import load_inventory
    from .journal import Journal
    from .lab import LabError, lab_down, lab_up
    from .lab.state import LabPaths
    from .plans.steps import build_graph

    out = console()
    plans = _load_valid_plans(args.plans)
    state: Path = args.state_dir
    lab_dir, journal_path = _lab_dir(state), state / "journal.db"
    for stale in (journal_path, journal_path.with_name("journal.db-wal"), journal_path.with_name("journal.db-shm"),
                  state / "logs", state / "jobs"):
        if stale.is_dir():
            shutil.rmtree(stale)
        elif stale.exists():
            stale.unlink()
    state.mkdir(parents=True, exist_ok=True)

    started = time.monotonic()
    out.print(f"lab up: {len(plans.departments)} departments from {args.plans} ...", markup=False)
    lab_kwargs: dict[str, Any] = {"held": not args.keep}  # a killed demo's lab is removed by the next one
    if args.scale is not None:
        lab_kwargs["scale_mb_per_gb"] = args.scale
    try:
        lab_up(plans, lab_dir, **lab_kwargs)
    except LabError as exc:
        raise UserError(str(exc)) from None
    try:
        out.print(f"lab up in {time.monotonic() - started:.1f} s; state in {lab_dir}", markup=False)
        graph = build_graph(plans)
        with Journal.open(journal_path) as journal:
            for step in graph.steps.values():
                if step.approval:
                    journal.approve(step.id, "demo")
        lab_paths = LabPaths(lab_dir)
        inventory = load_inventory(lab_paths.inventory, [lab_paths.outputs])
        options = RunOptions(parallel=args.parallel, operator="demo", log_dir=state / "logs", work_dir=state / "jobs",
                             enforce_windows=False)  # the lab is a rehearsal
        summary = execute(plans, inventory, journal_path, options, args.format)
        if args.format == "text":
            _print_summary(summary)
            cmd_status(argparse.Namespace(plans=args.plans, journal=journal_path, format="text"))
        report = _write_report(args.plans, journal_path, state)
        if report:
            out.print(f"report: {report}", markup=False)
        out.print(f"journal: {journal_path} (fjmig status --journal {journal_path}); "
                  f"took {time.monotonic() - started:.0f} s", markup=False)
        return _exit_status(summary)
    finally:
        if args.keep:
            out.print(f"lab kept: fjmig lab status --state-dir {lab_dir}; fjmig lab down --state-dir {lab_dir}",
                      markup=False)
        else:
            try:
                lab_down(lab_dir)
                out.print("lab down", markup=False)
            except Exception as exc:  # never hide the run's own outcome behind a cleanup error
                raise UserError(f"lab down failed: {exc}; run 'fjmig lab down --state-dir {lab_dir}'") from exc


def _lab_dir(state: Path) -> Path:
    """The demo's lab lives beside its journal, unless that is under a directory every lab host
    mounts its own copy of (a clone in /root, say): then under /var/lib/fjmig."""
    from .lab.state import FORBIDDEN_STATE_ROOTS

    resolved = state.resolve()
    if any(resolved == root or root in resolved.parents for root in FORBIDDEN_STATE_ROOTS):
        return Path("/var/lib/fjmig/demo-lab")
    return state / "lab"


def _write_report(plans_dir: str, journal_path: Path, state: Path) -> Path | None:
    """The compliance report after the run, as a self-contained HTML page."""
    from .cli import main

    target = state / "report.html"
    status = main(["report", plans_dir, "--journal", str(journal_path), "--format", "html", "-o", str(target)])
    return target if status == 0 and target.exists() else None
