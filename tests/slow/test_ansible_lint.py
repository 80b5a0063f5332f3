"""The playbooks are clean under ansible-lint's production profile."""

from __future__ import annotations

import subprocess

from tests.support import ROOT
from tests.support.tools import tool


def test_playbooks_pass_ansible_lint_production_profile() -> None:
    result = subprocess.run([tool("ansible-lint"), "--offline", "--profile", "production", "."],
                            cwd=ROOT / "playbooks", capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "Profile 'production' was required, and it passed" in result.stdout + result.stderr
