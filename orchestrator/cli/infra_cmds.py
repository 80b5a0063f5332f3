"""`fjmig infra preview|up|outputs`: the Pulumi stacks through the Automation API (`infra.automation`).

A thin skin: arguments, progress, rendering, exit statuses. The library does the work.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .common import UserError, add_format, console, print_json


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    infra = commands.add_parser(
        "infra", help="build the targets: the Pulumi stacks (preview, up, outputs)",
        description="Drive the Pulumi program of infra/ through the Automation API, with the state backend and "
        "OpenStack credentials of the environment (docs/INFRA.md). A stack whose plans or config do not validate "
        "is refused. Exit 0 success, 1 invalid input or a failed update, 2 bad command line.")
    sub = infra.add_subparsers(dest="infra_command", metavar="ACTION", required=True)
    for name, text in (("preview", "what `up` would change"),
                       ("up", "create or update the stack's resources and write its outputs for `fjmig run`"),
                       ("outputs", "the stack's outputs (targets, tenancies, ...) from its state")):
        parser = sub.add_parser(name, help=text, description=text)
        parser.add_argument("--stack", metavar="S",
                            help="the stack (Pulumi.<S>.yaml; default: the one `pulumi stack select` selected)")
        parser.add_argument("--project", type=Path, default=None, metavar="DIR",
                            help="the Pulumi project directory (default: the one fjmig ships)")
        if name in ("preview", "up"):
            parser.add_argument("--exclude", action="append", default=[], metavar="URN_GLOB",
                                help="leave these resources out, as `pulumi up --exclude` (repeatable)")
            parser.add_argument("--exclude-dependents", action="store_true",
                                help="leave out what depends on the excluded resources too")
            parser.add_argument("--policy-pack", action="append", default=[], metavar="DIR",
                                help="run this policy pack too, e.g. policy (needs pulumi-language-python)")
        if name in ("up", "outputs"):
            parser.add_argument("-o", "--output", type=Path, default=None, metavar="FILE",
                                help="write the outputs here (up: default .fjmig/stacks/<S>.json; "
                                     "outputs: default stdout)")
        add_format(parser)
        parser.set_defaults(handler=cmd_infra)


def _project(args: argparse.Namespace) -> Path:
    from infra.settings import PROJECT_ROOT

    return (args.project or PROJECT_ROOT).resolve()


class _Progress:
    """Engine steps as they happen: a rich status line on a terminal, a line per change otherwise."""

    def __init__(self, fmt: str, title: str) -> None:
        self.fmt = fmt
        self.title = title
        self.out = console(stderr=True)
        self.live = fmt == "text" and self.out.is_terminal
        self.status: Any = None
        self.done = 0
        self.failed = 0

    def __enter__(self) -> _Progress:
        if self.live:
            self.status = self.out.status(self.title)
            self.status.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.status:
            self.status.stop()

    def __call__(self, step: Any) -> None:
        if self.fmt == "json":
            return
        if step.kind == "done":
            self.done += 1
            if step.op not in ("same", "read"):
                self._line(f"{step.op:<10}{step.type} {step.name}")
        elif step.kind == "failed":
            self.failed += 1
            self._line(f"{'failed':<10}{step.type} {step.name}", style="red")
        elif step.kind == "diagnostic":
            self._line(step.message, style="red")
        if self.status:
            self.status.update(f"{self.title}: {self.done} resources done" +
                               (f", {self.failed} failed" if self.failed else ""))

    def _line(self, text: str, style: str | None = None) -> None:
        self.out.print(text, style=style, markup=False, highlight=False)


def cmd_infra(args: argparse.Namespace) -> int:
    from infra import automation
    from infra.errors import InfraError

    project = _project(args)
    action = args.infra_command
    try:
        args.stack = args.stack or automation.selected_stack(project)
        if action == "outputs":
            values = automation.outputs(args.stack, project)
            if args.output:
                automation.write_outputs(values, args.output)
                if args.format == "json":
                    print_json({"stack": args.stack, "outputs_file": str(args.output)})
            else:
                sys.stdout.write(json.dumps(values, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
            return 0
        options = automation.Options(tuple(args.exclude), args.exclude_dependents, tuple(args.policy_pack))
        run = automation.up if action == "up" else automation.preview
        with _Progress(args.format, f"{action} {args.stack}") as progress:
            result = run(args.stack, project, options, progress)
    except InfraError as exc:
        raise UserError(str(exc)) from None
    path = None
    if result.outputs is not None:
        path = automation.write_outputs(result.outputs, args.output or automation.outputs_path(args.stack))
    changes = {op: n for op, n in sorted(result.changes.items()) if n}
    if args.format == "json":
        print_json({"stack": result.stack, "operation": result.operation, "changes": changes,
                    "seconds": round(result.seconds, 1), "outputs_file": str(path) if path else None})
        return 0
    out = console()
    summary = ", ".join(f"{n} {op}" for op, n in changes.items()) or "no resources"
    out.print(f"{result.operation} {result.stack}: {summary} ({result.seconds:.0f} s)", markup=False)
    if path:
        out.print(f"outputs: {path} (fjmig run --outputs {path}, or fjmig run --stack {result.stack})", markup=False)
    return 0
