"""What the journal holds and reports: step states, records, approvals, errors, the clock."""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..errors import FjmigError

STATES = ("pending", "running", "succeeded", "failed", "held", "blocked", "interrupted", "rolled-back")
FINISHED_STATES = frozenset({"succeeded", "failed", "interrupted", "rolled-back"})
"""States that end an attempt: the step's finish time and duration are recorded with them."""


class JournalError(FjmigError):
    """The journal cannot be used (corrupt, locked, not a journal, missing)."""


@dataclass
class StepRecord:
    step_id: str
    state: str
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    message: str | None
    duration: float | None = None
    stats: dict[str, Any] | None = None
    run_id: int | None = None


@dataclass
class Approval:
    step_id: str
    approved_by: str
    approved_at: datetime


@dataclass
class VerifyResult:
    ok: bool
    events: int
    head: str
    problems: list[str]


def now() -> datetime:
    """The journal's clock (UTC); tests replace it to write a journal at chosen times."""
    return datetime.now(UTC)


def operator_name() -> str:
    try:
        return os.environ.get("FJMIG_OPERATOR") or getpass.getuser()
    except (KeyError, OSError):
        return f"uid-{os.getuid()}"


def timestamp(value: datetime | None) -> str | None:
    return value.isoformat(timespec="microseconds") if value else None


def parse_timestamp(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
