"""`fjmig`: a thin command line over the orchestrator library.

Each `*_cmds` module registers its subcommands; handlers return the exit status
(0 success, 1 findings or failure, 2 bad command line, 3 steps held, 130 interrupted). A
`FjmigError` from the library (a problem in the user's input or environment) is printed
without a traceback, exit 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import FjmigError
from .common import UsageError, UserError, console

COMMAND_MODULES = ("plan_cmds", "lab_cmds", "run_cmds", "journal_cmds", "review_cmds", "infra_cmds", "demo_cmds")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fjmig",
        description="Plan, validate and execute the Digital Fujian government-cloud migration.",
        epilog="Run 'fjmig COMMAND --help' for a command's options. Honors NO_COLOR.",
    )
    parser.add_argument("--version", action="version", version=f"fjmig {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f".{name}", __package__).register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return 2
    err = console(stderr=True)
    try:
        return int(args.handler(args) or 0)
    except UsageError as exc:
        err.print(f"fjmig {args.command}: error: {exc}", markup=False)
        return 2
    except (UserError, FjmigError) as exc:
        err.print(f"error: {exc}", markup=False, style="red")
        return 1
    except KeyboardInterrupt:
        err.print("interrupted", style="yellow")
        return 130
    except BrokenPipeError:
        return 0


def run() -> None:
    sys.exit(main())
