"""Driving real runs on a lab, as the lab tier's tests do: the command line, the journal, the
files on the hosts, the processes a run left (found by this journal's job tokens or this test's
job dirs, never by a command line alone)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from orchestrator.journal import Journal
from tests.support import MINI, ROOT
from tests.support.processes import processes


@contextlib.contextmanager
def lab_of(plans: Path, state: Path, name: str, index: int, scale: float | None = None) -> Iterator[Path]:
    from orchestrator.lab import running_lab

    kwargs = {} if scale is None else {"scale": scale}
    with running_lab(plans, state, name=name, index=index, **kwargs):
        yield state


def fjmig(*args: str) -> subprocess.CompletedProcess[str]:
    """The real command line, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=900, env={**os.environ, "NO_COLOR": "1"}, check=False)


def run(lab: Path, journal: Path, *extra: str, plans: Path = MINI) -> subprocess.CompletedProcess[str]:
    return fjmig("run", str(plans), "--lab", str(lab), "--journal", str(journal), *extra)


def approve_all(journal: Path, plans: Path = MINI) -> None:
    from orchestrator.plans.loader import load_plans
    from orchestrator.plans.steps import build_graph

    with Journal.open(journal) as j:
        for step in build_graph(load_plans(plans)).steps.values():
            if step.approval:
                j.approve(step.id, "tester")


def manifest(lab: Path) -> dict[str, dict]:
    return json.loads((lab / "seed-manifest.json").read_text())


def outputs(lab: Path) -> dict:
    return json.loads((lab / "outputs.json").read_text())


def host_path(lab: Path, host: str, path: str) -> Path:
    """A file as the lab host `host` sees it (its own /srv and /root)."""
    return lab / "hosts" / host / path.lstrip("/")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_moved(lab: Path, gid: str) -> None:
    entry = manifest(lab)[gid]
    target = outputs(lab)["targets"][gid]["host"]
    root = host_path(lab, target, entry["path"])
    assert root.is_dir(), f"{gid}: nothing at {entry['path']} on {target}"
    found = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    assert found == set(entry["files"]), f"{gid}: file list differs on {target}"
    for rel, meta in entry["files"].items():
        assert sha256(root / rel) == meta["sha256"], f"{gid}: {rel} differs on {target}"


def http_get(address: str, port: int, path: str = "/", timeout: float = 3) -> bytes:
    with urllib.request.urlopen(f"http://{address}:{port}{path}", timeout=timeout) as response:
        return response.read()


def events(journal: Path, step_id: str, state: str) -> int:
    conn = sqlite3.connect(journal)
    rows = conn.execute("SELECT data FROM events WHERE step_id = ? AND kind = 'step'", (step_id,)).fetchall()
    conn.close()
    return sum(1 for (data,) in rows if json.loads(data)["state"] == state)


def states(journal: Path) -> dict[str, str]:
    with Journal.open(journal, readonly=True) as j:
        return {k: r.state for k, r in j.step_records().items()}


def step_stats(journal: Path, step_id: str) -> dict:
    """What the journal keeps of a step's last outcome (changed, bytes, downtime_s, ...)."""
    with Journal.open(journal, readonly=True) as j:
        return j.step_records()[step_id].stats or {}


def playbooks_of(base: Path) -> list[int]:
    """Processes started for jobs under `base`: job wrappers and their playbooks (FJMIG_JOB_DIR),
    the run's playbook server and what it forked (FJMIG_WORK_DIR). Other tests' don't count."""
    return processes(f"FJMIG_JOB_DIR={base}".encode()) + processes(f"FJMIG_WORK_DIR={base}".encode())


def tagged(journal: Path, command: bytes | None = None) -> list[int]:
    """Processes, local or on lab hosts, tagged with this journal's job tokens (cancel.yml); none
    before the journal's first run has named it."""
    conn = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'id'").fetchone()
    except sqlite3.DatabaseError:
        row = None
    finally:
        conn.close()
    return processes(f"FJMIG_JOB_TOKEN={row[0]}:".encode(), command=command) if row else []


def start_run(lab: Path, journal: Path, *extra: str, plans: Path = MINI) -> subprocess.Popen[str]:
    """`fjmig run` in the background (to stop, kill or watch it)."""
    return subprocess.Popen([sys.executable, "-m", "orchestrator", "run", str(plans), "--lab", str(lab),
                             "--journal", str(journal), "--parallel", "2", *extra], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def wait_for_state(journal: Path, kind: str, state: str = "running", timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if journal.exists():
            try:
                for step_id, current in states(journal).items():
                    if step_id.endswith(":" + kind) and current == state:
                        return step_id
            except (sqlite3.DatabaseError, Exception):
                pass
        time.sleep(0.05)
    raise AssertionError(f"no {kind} step reached {state}")
