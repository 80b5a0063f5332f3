"""The plans, as `fjmig` reads them: the same loader, the same model, the same structural rules.

A stack refuses to build from plans that `fjmig validate` would reject. Schedule rules (deadlines,
cutover windows) are not checked here: they concern when to migrate, not what to build.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from orchestrator.plans.findings import Finding
from orchestrator.plans.loader import PlansDirectoryError, PlanSet, load_plans
from orchestrator.plans.model import DepartmentPlan
from orchestrator.plans.rules import STRUCTURAL_RULES

from .errors import InfraError

MAX_LISTED = 20


def load_checked(root: Path) -> PlanSet:
    """Load and structurally validate the plans; raise InfraError listing every error finding."""
    try:
        plans = load_plans(root)
    except PlansDirectoryError as exc:
        raise InfraError(f"{exc} (config digital-fujian:plans)") from None
    findings: list[Finding] = list(plans.findings)
    if not plans.findings:  # rules need a loadable plan set
        for rule in STRUCTURAL_RULES:
            findings.extend(rule(plans))
    errors = [f for f in plans.resolve_lines(findings) if f.severity == "error"]
    if errors:
        raise InfraError(_summary(errors))
    return plans


def _summary(errors: Iterable[Finding]) -> str:
    items = sorted(errors, key=lambda f: (f.file, f.line or 1, f.rule))
    lines = [f.format() for f in items[:MAX_LISTED]]
    if len(items) > MAX_LISTED:
        lines.append(f"... and {len(items) - MAX_LISTED} more")
    return "the migration plans are invalid; nothing is built until `fjmig validate` passes:\n" + "\n".join(lines)


def in_scope(plan: DepartmentPlan, scope: str) -> bool:
    """Whether a department lands on this stack: its `target`, and for municipal-dc its city."""
    if scope.startswith("municipal-dc-"):
        return plan.target == "municipal-dc" and plan.department.city == scope.removeprefix("municipal-dc-")
    return plan.target == scope


def departments_in_scope(plans: PlanSet, scope: str) -> list[DepartmentPlan]:
    return sorted((p for p in plans.departments.values() if in_scope(p, scope)), key=lambda p: p.id)


def check_milestones(plans: PlanSet, milestones: Iterable[str]) -> list[str]:
    """The milestones this stack delivers, each one declared in infra.yaml."""
    wanted = list(milestones)
    unknown = [m for m in wanted if m not in plans.milestones]
    if unknown:
        known = ", ".join(sorted(plans.milestones)) or "none: the plans have no infra.yaml"
        raise InfraError(f"config digital-fujian:milestones: {', '.join(unknown)} not in infra.yaml (known: {known})")
    return wanted
