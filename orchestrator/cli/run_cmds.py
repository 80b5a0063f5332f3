"""`fjmig run`, `status`, `approve`, `rollback`, `journal verify|log`, `demo`."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

from .common import UsageError, UserError, add_format, console, positive_float, positive_int, print_json
from .plan_cmds import DEFAULT_PLANS

DEFAULT_JOURNAL = ".fjmig/journal.db"
DEFAULT_LAB = ".fjmig/lab"
UNTIL_KINDS = ("presync", "decommission", "cutover", "verify", "share", "retire", "close")


def _add_targets(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--inventory", type=Path, metavar="FILE", help="Ansible inventory of the source hosts")
    parser.add_argument("--outputs", type=Path, action="append", default=[], metavar="FILE",
                        help="targets: JSON of 'pulumi stack output --json' (repeat for several stacks)")
    parser.add_argument("--stack", action="append", default=[], metavar="S",
                        help="targets: the outputs of Pulumi stack S, read from its state (repeatable)")
    parser.add_argument("--lab", nargs="?", const=DEFAULT_LAB, default=None, metavar="STATE_DIR",
                        help=f"take inventory and outputs from the lab (default {DEFAULT_LAB})")


def _add_journal(parser: argparse.ArgumentParser) -> None:
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
    _add_targets(run)
    _add_journal(run)
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
    _add_journal(status)
    add_format(status)
    status.set_defaults(handler=cmd_status)

    approve = commands.add_parser("approve", help="approve a held cutover (who and when are journaled)")
    approve.add_argument("system", metavar="DEPT/SYSTEM")
    approve.add_argument("plans", nargs="?", default=DEFAULT_PLANS, metavar="PLANS_DIR")
    approve.add_argument("--by", metavar="NAME", help="approver (default: the operator's login)")
    _add_journal(approve)
    approve.set_defaults(handler=cmd_approve)

    rollback = commands.add_parser("rollback", help="return a system's service to its source (before verify)")
    rollback.add_argument("system", metavar="DEPT/SYSTEM")
    rollback.add_argument("plans", nargs="?", default=DEFAULT_PLANS, metavar="PLANS_DIR")
    _add_targets(rollback)
    _add_journal(rollback)
    rollback.set_defaults(handler=cmd_rollback)

    journal = commands.add_parser("journal", help="inspect the journal")
    journal_cmds = journal.add_subparsers(dest="journal_command", metavar="COMMAND", required=True)
    verify = journal_cmds.add_parser("verify", help="detect edited or deleted journal rows")
    _add_journal(verify)
    add_format(verify)
    verify.set_defaults(handler=cmd_journal_verify)
    log = journal_cmds.add_parser("log", help="the audit events, oldest first")
    _add_journal(log)
    log.add_argument("--step", metavar="STEP_ID", help="only this step's events")
    add_format(log)
    log.set_defaults(handler=cmd_journal_log)

    demo = commands.add_parser("demo", help="lab up, migrate the shipped plans end to end, status, lab down",
                               description="The main job on the built-in lab: bring the lab up from the plans, "
                               "run every step with approvals given, print the status and the report's path, "
                               "and bring the lab down (unless --keep).")
    demo.add_argument("plans", nargs="?", default=DEFAULT_PLANS, metavar="PLANS_DIR")
    demo.add_argument("--state-dir", type=Path, default=Path(".fjmig/demo"), metavar="DIR",
                      help="where the demo keeps its lab, journal and report (default %(default)s)")
    demo.add_argument("--keep", action="store_true", help="keep the lab up afterwards")
    demo.add_argument("--parallel", type=positive_int, default=4, metavar="N", help="jobs at once (default 4)")
    demo.add_argument("--scale", type=positive_float, default=None, metavar="MB_PER_GB",
                      help="lab data per plan GB (default: the lab's)")
    add_format(demo)
    demo.set_defaults(handler=cmd_demo)


# -- helpers ------------------------------------------------------------------------------------


def _load_valid_plans(plans_dir: str) -> Any:
    from ..plan import PlansDirectoryError, load_plans
    from ..policy import STRUCTURAL_RULES

    try:
        plans = load_plans(plans_dir)
    except PlansDirectoryError as exc:
        raise UsageError(str(exc)) from None
    findings = list(plans.findings)
    for rule in STRUCTURAL_RULES:
        findings.extend(rule(plans))
    errors = [f for f in plans.resolve_lines(findings) if f.severity == "error"]
    if errors:
        lines = "\n".join(f.format() for f in errors[:20])
        more = f"\n... and {len(errors) - 20} more" if len(errors) > 20 else ""
        raise UserError(f"the plans are invalid (fix them first; 'fjmig validate' lists all):\n{lines}{more}")
    return plans


def _inventory(args: argparse.Namespace) -> Any:
    from ..inventory import InventoryError, load_inventory
    from ..lab.state import LabPaths

    if args.lab:
        state = Path(args.lab)
        paths = LabPaths(state)
        inventory, outputs = paths.inventory, [paths.outputs]
        if not inventory.exists():
            raise UserError(f"no lab in {state}: run 'fjmig lab up' first")
    elif args.inventory:
        inventory, outputs = args.inventory, list(args.outputs) + _stack_outputs(args.stack)
        if not outputs:
            raise UsageError("--inventory needs --outputs (pulumi stack output --json) or --stack for the targets")
    else:
        raise UsageError("say where to run: --lab, or --inventory FILE --outputs FILE")
    try:
        return load_inventory(inventory, outputs)
    except InventoryError as exc:
        raise UserError(str(exc)) from None


def _stack_outputs(stacks: list[str]) -> list[Path]:
    """Each stack's outputs, written where --outputs reads them (infra.automation does the work)."""
    if not stacks:
        return []
    from infra.automation import stack_outputs_file
    from infra.errors import InfraError

    try:
        return [stack_outputs_file(stack) for stack in stacks]
    except InfraError as exc:
        raise UserError(str(exc)) from None


def jobs_dir(journal: Path) -> Path:
    """Where a journal's runs keep their job dirs: one per journal. A run reaps the job dirs that a
    dead run left (runner.reap_orphans: it kills their playbooks), which is safe only for the
    journal whose lock it holds; a run of another journal in the same directory may be alive."""
    return journal.parent / "jobs" / journal.name


def _open_journal(path: Path, readonly: bool = False) -> Any:
    from ..journal import Journal, JournalError

    try:
        return Journal.open(path, readonly=readonly)
    except JournalError as exc:
        raise UserError(str(exc)) from None


class _Reporter:
    """Progress: rich on a terminal, plain lines otherwise, JSON lines with --format json."""

    def __init__(self, fmt: str, total: int = 0) -> None:
        self.fmt = fmt
        self.out = console()
        self.live = fmt == "text" and self.out.is_terminal
        self.progress: Any = None
        self.task: Any = None
        self.running: set[str] = set()
        self.done = 0
        self.bytes = 0

    def __enter__(self) -> _Reporter:
        if self.live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), console=self.out, transient=False)
            self.progress.start()
            self.task = self.progress.add_task("steps", total=None)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress:
            self.progress.stop()

    def __call__(self, event: Any) -> None:
        if self.fmt == "json":
            record = {"event": event.kind, "step": event.step_id, "state": event.state, "message": event.message,
                      **event.data, "time": time.time()}
            sys.stdout.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
            sys.stdout.flush()
            return
        if event.kind == "run-started":
            total, done = event.data["selected"], event.data["done"]
            self.done = done
            resumed = event.data.get("resumed") or []
            text = f"run {event.data['run_id']}: {total} steps selected, {done} already done"
            if resumed:
                text += f"; rerunning {len(resumed)} interrupted: {', '.join(resumed)}"
            self._line(text)
            if self.progress:
                self.progress.update(self.task, total=total, completed=done)
        elif event.kind == "step-started":
            self.running.add(event.step_id)
            attempt = event.data.get("attempt", 1)
            self._line(f"start  {event.step_id}" + (f" (attempt {attempt})" if attempt > 1 else ""), dim=True)
        elif event.kind == "step-finished":
            self.running.discard(event.step_id)
            if event.state == "succeeded":
                self.done += 1
            self.bytes += int(event.data.get("bytes") or 0)
            style = {"succeeded": "green", "failed": "red"}.get(event.state or "", "yellow")
            extra = f": {event.message}" if event.message else ""
            changed = event.data.get("changed")
            if event.state == "succeeded" and changed is not None:
                extra = f" ({changed} changed)"
            self._line(f"{event.state:<10}{event.step_id}{extra}", style=style)
        elif event.kind in ("step-held", "step-blocked", "step-retry"):
            self._line(f"{event.kind.removeprefix('step-'):<10}{event.step_id}: {event.message}", style="yellow")
        elif event.kind == "run-finished":
            self._line(f"run {event.data['run_id']} {event.state}: {_size(self.bytes)} moved")
        if self.progress:
            now_running = ", ".join(sorted(self.running)[:3]) + (" …" if len(self.running) > 3 else "")
            self.progress.update(self.task, completed=self.done,
                                 description=f"{_size(self.bytes)} moved; running [{now_running}]")

    def _line(self, text: str, style: str | None = None, dim: bool = False) -> None:
        target = self.progress.console if self.progress else self.out
        if dim and not self.live:
            style = None
        target.print(text, style=style or ("dim" if dim else None), markup=False, highlight=False)


def _size(count: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000  # type: ignore[assignment]
    return f"{count} B"


def execute(plans: Any, inventory: Any, journal_path: Path, options: Any, fmt: str) -> Any:
    """Lock the journal, run the executor with progress, handle Ctrl-C; returns the summary."""
    from ..executor import Executor
    from ..journal import JournalLocked

    journal = _open_journal(journal_path)
    try:
        journal.lock()
    except JournalLocked as exc:
        journal.close()
        raise UserError(str(exc)) from None
    executor = Executor(plans, inventory, journal, options)
    previous = signal.getsignal(signal.SIGINT)

    def on_sigint(signum: int, frame: Any) -> None:
        executor.stop()
        console(stderr=True).print("stopping: cancelling running jobs (Ctrl-C again to force)", style="yellow")
        signal.signal(signal.SIGINT, previous)

    signal.signal(signal.SIGINT, on_sigint)
    signal.signal(signal.SIGTERM, on_sigint)
    try:
        with _Reporter(fmt) as reporter:
            executor.on_event = reporter
            return executor.run()
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        journal.close()


def _exit_status(summary: Any) -> int:
    return {"succeeded": 0, "failed": 1, "held": 3, "interrupted": 130}.get(summary.status, 1)


# -- commands -----------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    from ..executor import RunOptions

    plans = _load_valid_plans(args.plans)
    for pattern in args.only:
        known = plans.systems if "/" in pattern else plans.departments
        if pattern not in known:
            raise UsageError(f"--only {pattern}: no such department or system in {args.plans}")
    inventory = _inventory(args)
    journal_dir = args.journal.parent
    options = RunOptions(
        parallel=args.parallel, only=args.only, until=args.until, check=args.check, retries=args.retries,
        backoff_s=args.backoff, log_dir=journal_dir / "logs", work_dir=jobs_dir(args.journal),
        playbook_server=not args.no_playbook_server, enforce_windows=not (args.lab or args.ignore_windows),
    )
    summary = execute(plans, inventory, args.journal, options, args.format)
    if args.format == "text":
        _print_summary(summary)
    return _exit_status(summary)


def _print_summary(summary: Any) -> None:
    out = console()
    counts = {s: summary.count(s) for s in ("succeeded", "failed", "blocked", "held", "interrupted", "pending")}
    out.print(", ".join(f"{n} {s}" for s, n in counts.items() if n) or "nothing to do", markup=False)
    for step_id, message in sorted(summary.messages.items()):
        state = summary.states.get(step_id)
        if state in ("failed", "held", "pending"):
            out.print(f"  {state}: {step_id}: {message}", markup=False)


def status_data(plans: Any, records: dict[str, Any], approvals: dict[str, Any]) -> dict[str, Any]:
    """Per department: done/total, running, held, failed (with reasons), and the downtime of each
    finished cutover (seconds from the freeze to the switch, as the cutover playbook measured it)."""
    from ..graph import build_graph

    graph = build_graph(plans)
    out: dict[str, Any] = {}
    for step_id, step in graph.steps.items():
        if step.kind == "milestone":
            continue
        dept = out.setdefault(step.dept, {"done": 0, "total": 0, "running": [], "held": [], "failed": [],
                                          "blocked": [], "interrupted": [], "downtime_s": {}})
        dept["total"] += 1
        record = records.get(step_id)
        state = record.state if record else "pending"
        if state == "succeeded":
            dept["done"] += 1
            if step.kind == "cutover" and record and "downtime_s" in (record.stats or {}):
                dept["downtime_s"][step.subject] = record.stats["downtime_s"]
        elif state in ("running", "interrupted"):
            dept[state].append(step_id)
        elif state in ("held", "failed", "blocked"):
            dept[state].append({"step": step_id, "reason": record.message if record else None})
    for step_id, approval in approvals.items():
        dept = out.get(step_id.split("/", 1)[0])
        if dept is not None:
            dept.setdefault("approved", []).append({"step": step_id, "by": approval.approved_by,
                                                    "at": approval.approved_at.isoformat()})
    return out


def cmd_status(args: argparse.Namespace) -> int:
    from rich.table import Table

    plans = _load_valid_plans(args.plans)
    if args.journal.exists():
        with _open_journal(args.journal, readonly=True) as journal:
            records, approvals = journal.step_records(), journal.approvals()
    else:
        records, approvals = {}, {}
    data = status_data(plans, records, approvals)
    if args.format == "json":
        print_json({"journal": str(args.journal), "departments": data})
        return 0
    table = Table(title=f"Migration status ({args.journal})", title_justify="left")
    for column in ("department", "done", "running", "held", "failed / blocked", "longest downtime"):
        table.add_column(column)
    for dept in sorted(data):
        row = data[dept]
        problems = [f"{f['step']}: {f['reason']}" for f in row["failed"]] + \
                   [f"{b['step']} (blocked)" for b in row["blocked"]]
        # the longest cutover downtime of the department (every system's: --format json)
        longest = max(row["downtime_s"].values(), default=None)
        table.add_row(dept, f"{row['done']}/{row['total']}", "\n".join(row["running"] + row["interrupted"]),
                      "\n".join(h["step"] for h in row["held"]), "\n".join(problems),
                      f"{longest:.2f} s" if longest is not None else "")
    console().print(table)
    return 0


def _system_arg(plans: Any, text: str) -> tuple[Any, Any]:
    if text not in plans.systems:
        raise UsageError(f"{text}: no such system (use DEPT/SYSTEM, e.g. fj-aic/registry)")
    return plans.systems[text]


def cmd_approve(args: argparse.Namespace) -> int:
    from ..journal import operator_name

    plans = _load_valid_plans(args.plans)
    _, system = _system_arg(plans, args.system)
    step_id = f"{args.system}:cutover"
    out = console()
    if not system.migrates:
        raise UserError(f"{args.system} is not migrated (it is {system.status}, {system.classification}): "
                        "nothing to approve")
    if not (system.cutover and system.cutover.approval):
        out.print(f"note: {args.system} does not require approval (cutover.approval is false)", style="yellow")
    with _open_journal(args.journal) as journal:
        approval = journal.approve(step_id, args.by or operator_name())
        record = journal.step_records().get(step_id)
        if record and record.state == "held":
            journal.record(None, step_id, "pending", f"approved by {approval.approved_by}")
    out.print(f"approved {step_id} by {approval.approved_by} at {approval.approved_at.isoformat()}; "
              "it runs with the next 'fjmig run'", markup=False)
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from ..executor import RollbackError, rollback_system
    from ..journal import JournalLocked

    plans = _load_valid_plans(args.plans)
    _system_arg(plans, args.system)
    inventory = _inventory(args)
    journal = _open_journal(args.journal)
    try:
        journal.lock()
    except JournalLocked as exc:
        journal.close()
        raise UserError(str(exc)) from None
    try:
        result = rollback_system(plans, inventory, journal, args.system, work_dir=jobs_dir(args.journal))
    except RollbackError as exc:
        raise UserError(str(exc)) from None
    finally:
        journal.close()
    if result.status != "successful":
        raise UserError(f"rollback of {args.system} failed: {result.message}")
    console().print(f"rolled back {args.system}: service is on its source again; 'fjmig run' redoes the cutover",
                    markup=False)
    return 0


def cmd_journal_verify(args: argparse.Namespace) -> int:
    with _open_journal(args.journal, readonly=True) as journal:
        result = journal.verify()
    if args.format == "json":
        print_json({"ok": result.ok, "events": result.events, "head": result.head, "problems": result.problems})
    else:
        out = console()
        for problem in result.problems:
            out.print(f"{args.journal}: {problem}", style="red", markup=False)
        verdict = "intact" if result.ok else "TAMPERED"
        out.print(f"{args.journal}: {verdict}: {result.events} events, head {result.head}", markup=False)
    return 0 if result.ok else 1


def cmd_journal_log(args: argparse.Namespace) -> int:
    with _open_journal(args.journal, readonly=True) as journal:
        events = journal.events(args.step)
    if args.format == "json":
        print_json(events)
        return 0
    out = console()
    for event in events:
        out.print(f"{event['seq']:>6} {event['at']} run {event['run_id'] or '-':<4} {event['kind']:<13} "
                  f"{event['step_id'] or ''} {json.dumps(event['data'], ensure_ascii=False)}", markup=False)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    return run_demo(args)
