"""The canary: every touchpoint on ansible-core's, ansible-runner's and ptyprocess's insides still
holds with the installed versions (each probed in a fresh interpreter, as the server would)."""

from __future__ import annotations

import json
import subprocess
import sys

from orchestrator.execution.ansible_internals import CHECKED_VERSIONS, TOUCHPOINTS
from tests.support import ROOT

PROBE = "import json; from orchestrator.execution.ansible_internals import probe_all; print(json.dumps(probe_all()))"


def test_every_touchpoint_still_holds() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(outcome) == {point.name for point in TOUCHPOINTS}
    broken = {name: problem for name, problem in outcome.items() if problem}
    relies = {point.name: point.relies_on for point in TOUCHPOINTS}
    assert not broken, "ansible internals changed (checked against " + ", ".join(
        f"{k} {v}" for k, v in CHECKED_VERSIONS.items()) + "):\n" + "\n".join(
        f"- {name}: {problem} (relies on {relies[name]})" for name, problem in broken.items())


def test_a_broken_touchpoint_is_named() -> None:
    """The probes can fail: a changed contract is reported by name."""
    script = ("import json, ansible.utils.collection_loader._collection_finder as f; f._meta_yml_to_dict = None; "
              "from orchestrator.execution.ansible_internals import probe_all; print(json.dumps(probe_all()))")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          check=False)
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["collection metadata cache"] and "not set" in outcome["collection metadata cache"]
    assert outcome["display width"] is None
