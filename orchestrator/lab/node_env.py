"""An execution node's own environment: a venv with ansible-core and ansible-runner (docs/LAB.md).

The lab's nodes run `ansible-runner worker` and the node's playbook server from this venv, made
with the machine's python3 (what a node host has), never the control node's interpreter. It is
built once per pair of versions, the control node's own (the playbooks are tested with them), in
a cache directory shared by every lab of the machine (lab hosts share /var with it), so a second
`lab up` finds it ready. pip installs from the package index.
"""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

from .state import LabError

CACHE = Path("/var/cache/fjmig/node-env")
PACKAGES = ("ansible-core", "ansible-runner")
PYTHON = "/usr/bin/python3"


def versions() -> dict[str, str]:
    """The control node's ansible-core and ansible-runner: the node gets the same."""
    return {name: metadata.version(name) for name in PACKAGES}


def env_dir(cache: Path = CACHE) -> Path:
    key = "-".join(f"{name}-{version}" for name, version in versions().items())
    return cache / key


def ensure_node_env(cache: Path = CACHE, timeout: float = 900) -> Path:
    """The venv for the lab's execution nodes, built if it is not there yet (under a lock: labs
    built at once share it). Complete only once `.complete` is written."""
    venv = env_dir(cache)
    done = venv / ".complete"
    if done.exists():
        return venv
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if done.exists():
            return venv
        shutil.rmtree(venv, ignore_errors=True)  # a build that was interrupted
        pins = [f"{name}=={version}" for name, version in versions().items()]
        steps = [[PYTHON, "-m", "venv", str(venv)],
                 [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", *pins]]
        for argv in steps:
            try:
                result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
            except subprocess.TimeoutExpired:
                result = None
            if result is None or result.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)
                detail = (result.stderr or result.stdout).strip()[-500:] if result else f"timed out ({timeout:.0f} s)"
                raise LabError(f"building the execution nodes' environment in {venv} failed at "
                               f"`{' '.join(argv[:3])}`: {detail}")
        with contextlib.suppress(OSError):
            (venv / "bin" / "ansible-runner").chmod(0o755)
        done.write_text(" ".join(pins) + "\n")
    return venv
