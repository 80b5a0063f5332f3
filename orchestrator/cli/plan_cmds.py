"""`fjmig validate`, `fjmig plan`, `fjmig schema`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .common import (
    UsageError,
    UserError,
    add_format,
    console,
    date_arg,
    gc_paused,
    positive_float,
    positive_int,
    print_json,
    today_cst,
    write_output,
)

DEFAULT_PLANS = "migration_plans"


def add_plan_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by every command that loads and schedules plans."""
    parser.add_argument("plans", nargs="?", default=DEFAULT_PLANS, metavar="PLANS_DIR",
                        help="plans directory (default %(default)s)")
    parser.add_argument("--start", type=date_arg, default=None, metavar="DATE",
                        help="the day the schedule starts (default: today, +08:00)")
    parser.add_argument("--bandwidth", type=positive_float, default=1.0, metavar="GBIT_PER_S",
                        help="copy bandwidth per transfer in Gbit/s (default %(default)s)")
    parser.add_argument("--parallel", type=positive_int, default=4, metavar="N",
                        help="transfers at once (default %(default)s)")
    parser.add_argument("--strict", action="store_true", help="missed deadlines are errors, not warnings")


def _rules_epilog() -> str:
    from ..plans.findings import rule_doc
    from ..plans.rules import RULES

    width = max(map(len, RULES))
    lines = [f"  {rule:<{width}}  {rule_doc(rule)}" for rule in RULES]
    return "rules (each explained, with an example finding, in its section):\n" + "\n".join(lines)


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    validate = commands.add_parser("validate", help="check plans against the format and the policy",
                                   description="Check every plan against the plan format (docs/PLAN_FORMAT.md) and "
                                   "the province's policy (docs/POLICY.md); print every finding at once as "
                                   "FILE:LINE: SEVERITY[RULE]: message. Exit 0 valid, 1 invalid, 2 usage error.",
                                   epilog=_rules_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    add_plan_options(validate)
    add_format(validate)
    validate.set_defaults(handler=cmd_validate)

    plan = commands.add_parser("plan", help="order the work: steps, waves, schedule, critical path",
                               description="Expand plans into steps, order them as a dependency graph "
                               "and schedule them (see the README for the duration model).")
    add_plan_options(plan)
    add_format(plan, ("text", "json", "markdown", "mermaid", "dot"))
    plan.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    plan.set_defaults(handler=cmd_plan)

    schema = commands.add_parser("schema", help="print or check the plans' JSON Schema",
                                 description="Print the JSON Schema generated from the plan model, "
                                 "write it (--write) or check that the published one is current (--check).")
    schema.add_argument("plans", nargs="?", default=DEFAULT_PLANS, metavar="PLANS_DIR")
    mode = schema.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="write PLANS_DIR/schema.json")
    mode.add_argument("--check", action="store_true", help="exit 1 if PLANS_DIR/schema.json is stale")
    schema.set_defaults(handler=cmd_schema)


def load_and_validate(args: argparse.Namespace) -> Any:
    """Load plans and run every rule; shared by validate, plan and later commands."""
    from ..plans.loader import PlansDirectoryError, load_plans
    from ..plans.rules import Options, validate
    from ..plans.schedule import DurationModel

    try:
        plans = load_plans(args.plans)
    except PlansDirectoryError as exc:
        raise UsageError(str(exc)) from None
    options = Options(
        start=args.start or today_cst(),
        model=DurationModel(bandwidth_gbit=args.bandwidth, parallel=args.parallel),
        strict=args.strict,
    )
    return plans, validate(plans, options)


def _print_findings(result: Any, stderr: bool) -> None:
    out = console(stderr=stderr)
    if out.color_system is None:  # no colour to add (a pipe, a file, NO_COLOR): plain lines are much faster
        stream = sys.stderr if stderr else sys.stdout
        stream.write("".join(finding.format() + "\n" for finding in result.findings))
        return
    for finding in result.findings:
        style = "red" if finding.severity == "error" else "yellow"
        out.print(finding.format(), style=style, markup=False)


def _summary_line(plans: Any, result: Any) -> str:
    errors, warnings = len(result.errors), len(result.warnings)
    count = len(plans.departments)
    verdict = "invalid" if errors else "valid"
    return f"{verdict}: {errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)} " \
           f"in {count} department plan{'s' * (count != 1)}"


def cmd_validate(args: argparse.Namespace) -> int:
    with gc_paused():
        plans, result = load_and_validate(args)
    if args.format == "json":
        print_json({
            "valid": not result.errors,
            "errors": len(result.errors),
            "warnings": len(result.warnings),
            "departments": sorted(plans.departments),
            "findings": [f.as_dict() for f in result.findings],
        })
    else:
        _print_findings(result, stderr=False)
        console(stderr=True).print(_summary_line(plans, result), markup=False)
    return 1 if result.errors else 0


def cmd_plan(args: argparse.Namespace) -> int:
    from ..plans.render import render

    with gc_paused():
        plans, result = load_and_validate(args)
        text = None if result.errors or result.schedule is None else render(result.schedule, args.format)
    if text is None:
        _print_findings(result, stderr=True)
        console(stderr=True).print("no schedule: " + _summary_line(plans, result), markup=False)
        return 1
    if result.warnings:
        console(stderr=True).print(
            f"{len(result.warnings)} warnings (run 'fjmig validate' for them)", style="yellow", markup=False
        )
    write_output(text, args.output)
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from ..plans.model import json_schemas

    texts = {name: json.dumps(schema, ensure_ascii=False, indent=2) + "\n"
             for name, schema in json_schemas().items()}
    if args.write:
        for name, text in texts.items():
            write_output(text, str(Path(args.plans) / name))
        return 0
    if args.check:
        stale = []
        for name, text in texts.items():
            try:
                current = (Path(args.plans) / name).read_text(encoding="utf-8")
            except OSError:
                current = ""
            if current != text:
                stale.append(name)
        if stale:
            raise UserError(f"{', '.join(stale)} in {args.plans} is stale: run 'fjmig schema --write {args.plans}'")
        return 0
    write_output(texts["schema.json"], None)
    return 0
