"""`fjmig demo`: the main job on the built-in lab (orchestrator/demo.py), with progress."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_format, console, positive_float, positive_int
from .plan_cmds import DEFAULT_PLANS
from .progress import Reporter, print_summary
from .run_cmds import print_status, stopping


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
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
    demo.add_argument("--execution-nodes", action="store_true",
                      help="run every job on its target group's execution node; the municipal data centers "
                      "are then unreachable from this machine except through their nodes (docs/EXECUTION.md)")
    add_format(demo)
    demo.set_defaults(handler=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo
    from ..execution.runs import exit_status

    out = console()

    def say(text: str) -> None:
        out.print(text, markup=False)

    with Reporter(args.format) as reporter:
        result = run_demo(args.plans, args.state_dir, keep=args.keep, parallel=args.parallel, scale=args.scale,
                          on_event=reporter, say=say, on_stopping=stopping, execution_nodes=args.execution_nodes)
    if args.format == "text":
        print_summary(result.summary)
        print_status(result.status, result.journal)
    say(f"report: {result.report}")
    say(f"journal: {result.journal} (fjmig status --journal {result.journal}); took {result.seconds:.0f} s")
    return exit_status(result.summary)
