"""`fjmig diff` (a plan review for pull requests) and `fjmig report` (the policy's scorecard)."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

from .common import (
    UsageError,
    UserError,
    add_format,
    console,
    date_arg,
    positive_float,
    positive_int,
    today_cst,
    write_output,
)
from .plan_cmds import DEFAULT_PLANS


def _schedule_options(parser: argparse.ArgumentParser,
                      start_help: str = "the day the schedule starts (default: today, +08:00)") -> None:
    """Like `fjmig plan`'s options, without the positional plans directory."""
    parser.add_argument("--start", type=date_arg, default=None, metavar="DATE", help=start_help)
    parser.add_argument("--bandwidth", type=positive_float, default=1.0, metavar="GBIT_PER_S",
                        help="copy bandwidth per transfer in Gbit/s (default %(default)s)")
    parser.add_argument("--parallel", type=positive_int, default=4, metavar="N",
                        help="transfers at once (default %(default)s)")
    parser.add_argument("--strict", action="store_true", help="missed deadlines are errors, not warnings")


def _options(args: argparse.Namespace) -> Any:
    from ..plans.rules import Options
    from ..plans.schedule import DurationModel

    return Options(start=args.start or today_cst(),
                   model=DurationModel(bandwidth_gbit=args.bandwidth, parallel=args.parallel),
                   strict=args.strict)


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    diff = commands.add_parser(
        "diff", help="review a change to the plans (Markdown for a pull request)",
        description="Compare the plans at two git revisions (HEAD defaults to the working tree) or in two "
        "directories, and write a review: the summary first, then what changed field by field, dependency "
        "edges, waves, critical path, slack to deadlines, policy findings introduced or fixed, and a "
        "Mermaid graph of the changed part. Exit 0, or 1 with --fail-on when the change introduces "
        "findings of that severity.")
    diff.add_argument("base", metavar="BASE", help="git revision (or plans directory) before the change")
    diff.add_argument("head", nargs="?", default=None, metavar="HEAD",
                      help="git revision (or plans directory) after the change (default: the working tree)")
    diff.add_argument("--plans", default=DEFAULT_PLANS, metavar="DIR",
                      help="the plans directory inside the repository (default %(default)s)")
    _schedule_options(diff)
    add_format(diff, ("markdown", "json"))
    diff.add_argument("--fail-on", choices=("error", "warning"), default=None,
                      help="exit 1 when the change introduces findings of this severity (or worse)")
    diff.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    diff.set_defaults(handler=cmd_diff)

    report = commands.add_parser(
        "report", help="the policy scorecard: milestones per department and city",
        description="Build the scorecard the policy's ledger, inspections and evaluation need, from the "
        "plans and (with --journal) what the executor has done: per department and city, census, zombies, "
        "systems moved, sharing, private networks, data centers, each against its deadline; excluded "
        "systems; the share of systems on the sharing platform against the 60% target; burn-down and "
        "Gantt of what remains.")
    report.add_argument("plans", nargs="?", default=DEFAULT_PLANS, metavar="PLANS_DIR",
                        help="plans directory (default %(default)s)")
    report.add_argument("--journal", metavar="FILE", default=None,
                        help="the executor's journal (SQLite, read only); without it nothing counts as done")
    _schedule_options(report, "the report's date: remaining work is scheduled from it and deadlines before it "
                      "have passed (default: today, +08:00)")
    add_format(report, ("markdown", "json", "html"))
    report.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    report.set_defaults(handler=cmd_report)


def _side(directory: Path, label: str, display: str, options: Any) -> Any:
    from ..plans.loader import PlansDirectoryError
    from ..review.diff import load_side

    try:
        return load_side(directory, label, display, options)
    except PlansDirectoryError as exc:
        raise UsageError(str(exc)) from None


def _diff_directories(args: argparse.Namespace, options: Any) -> Any:
    from ..review.diff import compare

    if args.head is None or not os.path.isdir(args.head):
        raise UsageError(f"{args.base} is a directory: give the other side as a directory too")
    base = _side(Path(args.base), args.base, args.base.rstrip("/"), options)
    head = _side(Path(args.head), args.head, args.base.rstrip("/"), options)
    return compare(base, head)


def _diff_revisions(args: argparse.Namespace, options: Any) -> Any:
    from ..review.diff import compare
    from ..review.gitrev import GitError, extract_plans, plans_path_in_repo, repo_root, resolve_revision

    cwd = Path.cwd()
    try:
        root = repo_root(cwd)
        inside = plans_path_in_repo(root, args.plans, cwd)
        with tempfile.TemporaryDirectory(prefix="fjmig-diff-") as tmp:
            base_commit = resolve_revision(root, args.base)
            base_dir = extract_plans(root, base_commit, inside, Path(tmp) / "base")
            base = _side(base_dir, f"{args.base} ({base_commit[:8]})", args.plans.rstrip("/"), options)
            if args.head is None:
                head_dir = root / Path(str(inside))
                if not head_dir.is_dir():
                    raise UserError(f"{args.plans}: no such plans directory in the working tree")
                head = _side(head_dir, "the working tree", args.plans.rstrip("/"), options)
            else:
                head_commit = resolve_revision(root, args.head)
                head_dir = extract_plans(root, head_commit, inside, Path(tmp) / "head")
                head = _side(head_dir, f"{args.head} ({head_commit[:8]})", args.plans.rstrip("/"), options)
            return compare(base, head)
    except GitError as exc:
        raise UserError(str(exc)) from None


def cmd_diff(args: argparse.Namespace) -> int:
    from ..review.diff import fails
    from ..review.diff_render import render_json, render_markdown

    options = _options(args)
    if os.path.isdir(args.base) and (args.head is None or os.path.isdir(args.head)):
        diff = _diff_directories(args, options)
    else:
        diff = _diff_revisions(args, options)
    text = render_json(diff) if args.format == "json" else render_markdown(diff)
    write_output(text, args.output)
    return 1 if fails(diff, args.fail_on) else 0


def cmd_report(args: argparse.Namespace) -> int:
    from ..plans.loader import PlansDirectoryError, load_plans
    from ..review.report import UnschedulablePlansError, scorecard
    from ..review.report_render import render

    try:
        plans = load_plans(args.plans)
    except PlansDirectoryError as exc:
        raise UsageError(str(exc)) from None
    try:
        report, errors = scorecard(plans, _options(args), args.journal)
    except UnschedulablePlansError as exc:
        raise UserError(f"{args.plans}: {exc}") from None
    if errors:
        console(stderr=True).print(f"note: the plans have {errors} errors (run 'fjmig validate'); "
                                   "the report counts what loads", style="yellow", markup=False)
    write_output(render(report, args.format), args.output)
    return 0
