"""Fixtures every tier shares, and the tiers themselves: a test's directory is its tier.

- tests/unit: the fast tier (`make test-fast`): no lab, no real cloud, no slow tools;
- tests/slow: real ansible-playbook, ansible-lint, Chromium: seconds each, no lab;
- tests/lab: the built-in lab (root, network namespaces, sshd, rsync);
- tests/real: the real Pulumi engine against an OpenStack API on loopback.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.support import PLANS

pytest_plugins = ["tests.support.reports"]

TIERS = {"slow": "slow", "lab": "lab", "real": "real"}

# ansible-runner and ansible-playbook live next to the interpreter in the venv.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests = Path(__file__).resolve().parent
    for item in items:
        try:
            tier = item.path.resolve().relative_to(tests).parts[0]
        except ValueError:
            continue
        if tier in TIERS:
            item.add_marker(getattr(pytest.mark, TIERS[tier]))


@pytest.fixture
def plans_copy(tmp_path: Path) -> Path:
    """A writable copy of the shipped plans."""
    target = tmp_path / "plans"
    shutil.copytree(PLANS, target)
    return target
