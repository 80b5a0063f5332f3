"""What every command shares: consoles that honour NO_COLOR, argument types, errors."""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import sys
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

from rich.console import Console


class UserError(Exception):
    """A problem with the user's input or environment: printed without a traceback, exit 1."""


class UsageError(Exception):
    """A bad command line: printed without a traceback, exit 2."""


def color_disabled() -> bool:
    return bool(os.environ.get("NO_COLOR")) or os.environ.get("TERM") == "dumb"


def console(stderr: bool = False) -> Console:
    # emoji=False: `FILE:100: error` must not become `FILE💯 error` (rich reads `:100:` as an emoji code).
    return Console(stderr=stderr, no_color=color_disabled(), highlight=False, soft_wrap=True, emoji=False)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a command builds large acyclic structures
    (YAML documents, models, graphs of tens of thousands of steps): its full collections would
    otherwise rescan everything built so far, again and again. Restores the previous state; what
    was built stays out of later collections (`gc.freeze`), which only matters for reference
    cycles, and the plan objects have none."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        # Everything allocated meanwhile sits in the youngest generation: the first collection
        # after re-enabling would traverse all of it (seconds for a province-scale plan set).
        # Freezing moves it out of the collector's sight; it is still freed by reference counting.
        gc.freeze()
        if was_enabled:
            gc.enable()


def today_cst() -> date:
    from ..plans.schedule import CST

    return datetime.now(CST).date()


def date_arg(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def add_format(parser: argparse.ArgumentParser, choices: tuple[str, ...] = ("text", "json")) -> None:
    parser.add_argument("--format", choices=choices, default=choices[0], help="output format (default %(default)s)")


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


def write_output(text: str, output: str | None) -> None:
    """Write to stdout, or to a file atomically (a half-written report is worse than none)."""
    if not output or output == "-":
        sys.stdout.write(text)
        return
    tmp = f"{output}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, output)
    except OSError as exc:
        raise UserError(f"cannot write {output}: {exc.strerror}") from None
