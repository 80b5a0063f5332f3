"""`fjmig run`, `status`, `approve`, `rollback`: the command line of execution/runs.py."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..plans.kinds import UNTIL_KINDS
from .common import UsageError, UserError, add_format, console, positive_float, positive_int, print_json
from .plan_cmds import DEFAULT_PLANS
from .progress import Reporter, print_summary

if TYPE_CHECKING:
    from ..execution.inventory import Inventory
    from ..plans.loader import PlanSet

DEFAULT_JOURNAL = ".fjmig/journal.db"
DEFAULT_LAB = ".fjmig/lab"


def add_targets(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--inventory", type=Path, metavar="FILE", help="Ansible inventory of the source hosts")
    parser.add_argument("--outputs", type=Path, action="append", default=[], metavar="FILE",
                        help="targets: JSON of 'pulumi stack output --json' (repeat for several stacks)")
    parser.add_argument("--stack", action="append", default=[], metavar="S",
                        help="targets: the outputs of Pulumi stack S, read from its state (repeatable)")
    parser.add_argument("--lab", nargs="?", const=DEFAULT_LAB, default=None, metavar="STATE_DIR",
                        help=f"take inventory and outputs from the lab (default {DEFAULT_LAB})")


def add_journal(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--journal", type=Path, default=Path(DEFAULT_JOURNAL), metavar="FILE",
                        help="the journal (default %(default)s)")


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    run = commands.add_parser("run", help="execute the migration steps (staged, resumable)",
                              description="Run the plans' steps in dependency order through Ansible. "
                              "Succeeded steps are never rerun; run again to resume. Exit 0 all selected steps "
                              "succeeded, 1 something failed or is blocked, 3 steps are held (for approval, or a "
                              "cutover outside its change window), "
                              "130 interrupted.")
    run.add_argument("plans", nargs="?", default=DEFAULT_PLANS, metavar="PLANS_DIR")
    add_targets(run)
    add_journal(run)
    run.add_argument("--parallel", type=positive_int, default=4, metavar="N", help="jobs at once (default 4)")
    run.add_argument("--only", action="append", default=[], metavar="DEPT[/SYSTEM]",
                     help="run only these departments or systems (repeatable)")
    run.add_argument("--until", choices=UNTIL_KINDS, metavar="KIND",
                     help="run steps up to this kind: " + ", ".join(UNTIL_KINDS))
    run.add_argument("--check", action="store_true", help="Ansible check mode: change nothing anywhere")
    run.add_argument("--ignore-windows", action="store_true",
                     help="start cutovers outside their plan's change window (recorded in the journal); "
                          "with --lab windows are never enforced: the lab is a rehearsal")
    run.add_argument("--no-playbook-server", action="store_true",
                     help="start a fresh ansible-playbook for every job instead of forking one warm playbook "
                          "server per run (slower; for troubleshooting)")
    run.add_argument("--retries", type=int, default=3, metavar="N", help="retries for unreachable hosts (default 3)")
    run.add_argument("--backoff", type=positive_float, default=2.0, metavar="SECONDS",
                     help="first retry delay, doubled each time (default 2)")
    add_format(run)
    run.set_defaults(handler=cmd_run)

    status = commands.add_parser("status", help="progress per department, from the journal")
    status.add_argument("plans", nargs="?", default=DEFAULT_PLANS, metavar="PLANS_DIR")
    add_journal(status)
    add_format(status)
    status.set_defaults(handler=cmd_status)

    approve = commands.add_parser("approve", help="approve a held cutover (who and when are journaled)")
    approve.add_argument("system", metavar="DEPT/SYSTEM")
    approve.add_argument("plans", nargs="?", default=DEFAULT_PLANS, metavar="PLANS_DIR")
    approve.add_argument("--by", metavar="NAME", help="approver (default: the operator's login)")
    add_journal(approve)
    approve.set_defaults(handler=cmd_approve)

    rollback = commands.add_parser("rollback", help="return a system's service to its source (before verify)")
    rollback.add_argument("system", metavar="DEPT/SYSTEM")
    rollback.add_argument("plans", nargs="?", default=DEFAULT_PLANS, metavar="PLANS_DIR")
    add_targets(rollback)
    add_journal(rollback)
    rollback.set_defaults(handler=cmd_rollback)


def targets(args: argparse.Namespace) -> Inventory:
    """Where the steps run: the lab's inventory and outputs, or the user's."""
    from ..execution.inventory import load_inventory
    from ..execution.runs import lab_targets

    if args.lab:
        return lab_targets(Path(args.lab))
    if args.inventory:
        outputs = list(args.outputs) + stack_outputs(args.stack)
        if not outputs:
            raise UsageError("--inventory needs --outputs (pulumi stack output --json) or --stack for the targets")
        return load_inventory(args.inventory, outputs)
    raise UsageError("say where to run: --lab, or --inventory FILE --outputs FILE")


def stack_outputs(stacks: list[str]) -> list[Path]:
    """Each stack's outputs, written where --outputs reads them (infra/automation.py does the work)."""
    if not stacks:
        return []
    from infra.automation import stack_outputs_file
    from infra.errors import InfraError

    try:
        return [stack_outputs_file(stack) for stack in stacks]
    except InfraError as exc:
        raise UserError(str(exc)) from None


def valid_plans(plans_dir: str) -> PlanSet:
    """The plans, gated as every acting command gates them (plans/valid.py); a missing or unusable
    plans directory is a command-line mistake (exit 2)."""
    from ..plans.loader import PlansDirectoryError
    from ..plans.valid import load_valid

    try:
        return load_valid(plans_dir)
    except PlansDirectoryError as exc:
        raise UsageError(str(exc)) from None


def system_arg(plans: PlanSet, text: str) -> str:
    if text not in plans.systems:
        raise UsageError(f"{text}: no such system (use DEPT/SYSTEM, e.g. fj-aic/registry)")
    return text


def stopping() -> None:
    console(stderr=True).print("stopping: cancelling running jobs (Ctrl-C again to force)", style="yellow")


# -- commands -----------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from ..execution import runs

    plans = valid_plans(args.plans)
    unknown = runs.check_selection(plans, args.only)
    if unknown:
        raise UsageError(f"--only {unknown[0]}: no such department or system in {args.plans}")
    inventory = targets(args)
    options = runs.options_for(
        args.journal, parallel=args.parallel, only=args.only, until=args.until, check=args.check,
        retries=args.retries, backoff_s=args.backoff, playbook_server=not args.no_playbook_server,
        enforce_windows=not (args.lab or args.ignore_windows),
    )
    with Reporter(args.format) as reporter:
        summary = runs.run(plans, inventory, args.journal, options, reporter, stopping)
    if args.format == "text":
        print_summary(summary)
    return runs.exit_status(summary)


def cmd_status(args: argparse.Namespace) -> int:
    from ..execution import runs

    data = runs.status(valid_plans(args.plans), args.journal)
    if args.format == "json":
        print_json({"journal": str(args.journal), **data})
        return 0
    print_status(data, args.journal)
    return 0


def print_status(data: dict[str, Any], journal: Path) -> None:
    from rich.table import Table

    table = Table(title=f"Migration status ({journal})", title_justify="left")
    for column in ("department", "done", "running", "held", "failed / blocked", "longest downtime"):
        table.add_column(column)
    departments = data["departments"]
    for dept in sorted(departments):
        row = departments[dept]
        problems = [f"{f['step']}: {f['reason']}" for f in row["failed"]] + \
                   [f"{b['step']} (blocked)" for b in row["blocked"]]
        # the longest cutover downtime of the department (every system's: --format json)
        longest = max(row["downtime_s"].values(), default=None)
        where = row.get("where", {})  # the execution node a running job runs on
        running = [f"{s} (on {where[s]})" if s in where else s for s in row["running"]]
        table.add_row(dept, f"{row['done']}/{row['total']}", "\n".join(running + row["interrupted"]),
                      "\n".join(h["step"] for h in row["held"]), "\n".join(problems),
                      f"{longest:.2f} s" if longest is not None else "")
    out = console()
    out.print(table)
    for note in data["notes"]:
        out.print(f"note (run {note['run']}): {note['message']}", style="yellow", markup=False)


def cmd_approve(args: argparse.Namespace) -> int:
    from ..execution import runs
    from ..journal import operator_name

    plans = valid_plans(args.plans)
    gid = system_arg(plans, args.system)
    result = runs.approve(plans, args.journal, gid, args.by or operator_name())
    out = console()
    if not result.required:
        out.print(f"note: {gid} does not require approval (cutover.approval is false)", style="yellow")
    approval = result.approval
    out.print(f"approved {approval.step_id} by {approval.approved_by} at {approval.approved_at.isoformat()}; "
              "it runs with the next 'fjmig run'", markup=False)
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from ..execution import runs

    plans = valid_plans(args.plans)
    gid = system_arg(plans, args.system)
    result = runs.rollback(plans, targets(args), args.journal, gid)
    if result.status != "successful":
        raise UserError(f"rollback of {gid} failed: {result.message}")
    console().print(f"rolled back {gid}: service is on its source again; 'fjmig run' redoes the cutover",
                    markup=False)
    return 0
