"""Pulumi entry point (`main: infra/` in Pulumi.yaml).

Pulumi runs this file as a script, with `infra/` (not the repository) on `sys.path`; put the
repository root first so that `infra` and `orchestrator` import as packages, whatever the cwd.
"""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from infra.program import main  # noqa: E402

main()
