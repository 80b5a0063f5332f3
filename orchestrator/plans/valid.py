"""The one way every command that acts on plans gets them: load, then the structural rules.

`fjmig run`, `status`, `approve`, `rollback`, the demo and the Pulumi programs refuse plans that
`fjmig validate` rejects. Schedule rules (deadlines, windows) are not checked here: they concern
when to migrate, not whether the plans describe something that can be built or moved.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..errors import FjmigError
from .findings import Finding
from .loader import PlanSet, load_plans
from .rules import structural_findings

MAX_LISTED = 20


class InvalidPlansError(FjmigError):
    """The plans load but break structural rules: every error finding, the first MAX_LISTED listed."""

    def __init__(self, errors: list[Finding]) -> None:
        self.errors = sorted(errors, key=lambda f: (f.file, f.line or 1, f.rule))
        super().__init__("the plans are invalid (fix them first; 'fjmig validate' lists all):\n"
                         + listing(self.errors))


def listing(findings: Iterable[Finding], most: int = MAX_LISTED) -> str:
    """Findings one per line, as `fjmig validate` prints them, at most MOST of them."""
    items = list(findings)
    lines = [f.format() for f in items[:most]]
    if len(items) > most:
        lines.append(f"... and {len(items) - most} more")
    return "\n".join(lines)


def load_valid(root: str | Path) -> PlanSet:
    """The plans under ROOT, or InvalidPlansError listing every structural error (PlansDirectoryError
    when ROOT itself is unusable)."""
    plans = load_plans(root)
    errors = [f for f in plans.resolve_lines(structural_findings(plans)) if f.severity == "error"]
    if errors:
        raise InvalidPlansError(errors)
    return plans
