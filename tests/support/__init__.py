"""What the tests share: where the repository, the shipped plans and the fixtures are."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLANS = ROOT / "migration_plans"
MINI = ROOT / "tests" / "fixtures" / "mini"
"""A small, fast plan set: two departments, 16 steps (see its files)."""
