"""The plans, as `fjmig` reads them: the same loader, the same model, the same structural rules.

A stack refuses to build from plans that `fjmig validate` would reject. Schedule rules (deadlines,
cutover windows) are not checked here: they concern when to migrate, not what to build.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from orchestrator.plans.loader import PlansDirectoryError, PlanSet
from orchestrator.plans.model import DepartmentPlan
from orchestrator.plans.valid import InvalidPlansError, listing, load_valid

from .errors import InfraError


def load_checked(root: Path) -> PlanSet:
    """The plans as `fjmig` gates them (plans/valid.py), or InfraError listing every error finding."""
    try:
        return load_valid(root)
    except PlansDirectoryError as exc:
        raise InfraError(f"{exc} (config digital-fujian:plans)") from None
    except InvalidPlansError as exc:
        raise InfraError("the migration plans are invalid; nothing is built until `fjmig validate` passes:\n"
                         + listing(exc.errors)) from None


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
