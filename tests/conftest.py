"""Shared fixtures: the shipped plans and a scratch plans directory."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PLANS = ROOT / "migration_plans"

# ansible-runner and ansible-playbook live next to the interpreter in the venv.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


@pytest.fixture
def plans_copy(tmp_path: Path) -> Path:
    """A writable copy of the shipped plans."""
    target = tmp_path / "plans"
    shutil.copytree(PLANS, target)
    return target
