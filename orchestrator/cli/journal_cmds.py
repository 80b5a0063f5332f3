"""`fjmig journal verify|log`: the journal's integrity and its audit events."""

from __future__ import annotations

import argparse
import json

from .common import add_format, console, print_json
from .run_cmds import add_journal


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    journal = commands.add_parser("journal", help="inspect the journal")
    journal_cmds = journal.add_subparsers(dest="journal_command", metavar="COMMAND", required=True)
    verify = journal_cmds.add_parser("verify", help="detect edited or deleted journal rows")
    add_journal(verify)
    add_format(verify)
    verify.set_defaults(handler=cmd_journal_verify)
    log = journal_cmds.add_parser("log", help="the audit events, oldest first")
    add_journal(log)
    log.add_argument("--step", metavar="STEP_ID", help="only this step's events")
    add_format(log)
    log.set_defaults(handler=cmd_journal_log)


def cmd_journal_verify(args: argparse.Namespace) -> int:
    from ..journal import Journal

    with Journal.open(args.journal, readonly=True) as journal:
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
    from ..journal import Journal

    with Journal.open(args.journal, readonly=True) as journal:
        events = journal.events(args.step)
    if args.format == "json":
        print_json(events)
        return 0
    out = console()
    for event in events:
        out.print(f"{event['seq']:>6} {event['at']} run {event['run_id'] or '-':<4} {event['kind']:<13} "
                  f"{event['step_id'] or ''} {json.dumps(event['data'], ensure_ascii=False)}", markup=False)
    return 0
