"""Policy pack entry point, run by the Pulumi CLI (`--policy-pack policy`).

Like `infra/__main__.py`, put the repository root on `sys.path` so that `policy.rules` and the
plan loader (`orchestrator`) import whatever directory the CLI runs this from.
"""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from pulumi_policy import PolicyPack  # noqa: E402

from policy.rules import POLICIES  # noqa: E402

PolicyPack(name="digital-fujian", policies=POLICIES)
