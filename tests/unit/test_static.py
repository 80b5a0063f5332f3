"""The Python is clean under the project's ruff rules (run with the suite so that CI keeps it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support import ROOT
from tests.support.tools import tool

BIN = Path(sys.executable).parent


def test_python_passes_ruff() -> None:
    result = subprocess.run([tool("ruff"), "check", "."], cwd=ROOT, capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode == 0, result.stdout[-4000:]
