"""Executor overhead: 100 no-op steps through fjmig's executor vs the same jobs through bare
ansible-runner, and the speed-up of `--parallel 4` on independent steps.

The plan set is generated: 50 departments, each with one zombie system and a data center, so
100 steps (50 decommission + 50 close, each close after its decommission). Every playbook is a
no-op play on localhost, so what is measured is the orchestration: graph, journal, job dirs,
ansible-runner and ansible-playbook start-up.

    python bench/executor_overhead.py [--departments 50]

Goals: fjmig within 1.2x of bare ansible-runner; with --parallel 4 on independent
steps, at least 85% of the ideal speed-up, where ideal = min(4, CPU cores) since each
ansible-playbook start-up is CPU-bound.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

NOOP = [{"name": "No-op", "hosts": "localhost", "gather_facts": False,
         "tasks": [{"name": "Nothing", "ansible.builtin.meta": "noop"}]}]


def department(i: int) -> dict:
    dept = f"bench-{i:03d}"
    return {
        "version": 1,
        "department": {"id": dept, "name": f"部门{i}", "level": "province", "city": None, "kind": "agency"},
        "datacenter": {"id": f"dc-{i:03d}", "hosts": [f"host-{i:03d}"]},
        "target": "provincial-cloud",
        "systems": [{
            "id": "old", "name": "旧系统", "function": "f", "scope": "department", "frequency": "never",
            "approved_by": "x", "approved_on": "2010-01-01", "funding_source": "fiscal",
            "classification": "unclassified", "status": "zombie", "host": f"host-{i:03d}",
            "data": {"path": "/srv/old", "size_gb": 1}, "share": False,
        }],
    }


def setup(base: Path, count: int) -> tuple[Path, Path, Path, Path]:
    plans, playbooks = base / "plans", base / "playbooks"
    plans.mkdir()
    playbooks.mkdir()
    for i in range(count):
        (plans / f"bench-{i:03d}.yaml").write_text(yaml.safe_dump(department(i), allow_unicode=True))
    for kind in ("decommission", "close"):
        (playbooks / f"{kind}.yml").write_text(yaml.safe_dump(NOOP))
    (playbooks / "ansible.cfg").write_text("[defaults]\ngathering = explicit\n")
    hosts = {f"host-{i:03d}": {"ansible_connection": "local"} for i in range(count)}
    inventory = base / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {"ansible_connection": "local"}, **hosts},
                                                 "vars": {"ansible_python_interpreter": sys.executable}}}))
    outputs = base / "outputs.json"
    outputs.write_text(json.dumps({"targets": {}, "archives": {f"bench-{i:03d}": {"host": "localhost",
                                                                                  "address": "127.0.0.1"}
                                                               for i in range(count)}}))
    return plans, playbooks, inventory, outputs


def run_fjmig(base: Path, plans_dir: Path, playbooks: Path, inventory: Path, outputs: Path, parallel: int) -> float:
    from orchestrator.execution.executor import Executor, RunOptions
    from orchestrator.execution.inventory import load_inventory
    from orchestrator.journal import Journal
    from orchestrator.plans.loader import load_plans

    plans = load_plans(plans_dir)
    inv = load_inventory(inventory, [outputs])
    journal_path = base / f"journal-{parallel}.db"
    work = base / f"work-{parallel}"
    with Journal.open(journal_path) as journal:
        journal.lock()
        options = RunOptions(parallel=parallel, work_dir=work, playbooks_dir=playbooks, operator="bench")
        started = time.perf_counter()
        summary = Executor(plans, inv, journal, options).run()
        elapsed = time.perf_counter() - started
    if summary.status != "succeeded":
        raise SystemExit(f"fjmig run failed: {summary.messages}")
    return elapsed


def run_bare(base: Path, playbooks: Path, inventory: Path, count: int) -> float:
    import ansible_runner

    started = time.perf_counter()
    for _ in range(count):
        for kind in ("decommission", "close"):
            job = Path(tempfile.mkdtemp(dir=base, prefix="bare-"))
            result = ansible_runner.run(private_data_dir=str(job), project_dir=str(playbooks), playbook=f"{kind}.yml",
                                        inventory=str(inventory), quiet=True,
                                        envvars={"ANSIBLE_HOST_KEY_CHECKING": "True"})
            if result.status != "successful":
                raise SystemExit(f"bare ansible-runner failed: {result.status}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--departments", type=int, default=50, help="steps = 2 x departments (default 50)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fjmig-bench-") as tmp:
        base = Path(tmp)
        plans, playbooks, inventory, outputs = setup(base, args.departments)
        steps = 2 * args.departments
        bare = run_bare(base, playbooks, inventory, args.departments)
        serial = run_fjmig(base, plans, playbooks, inventory, outputs, parallel=1)
        parallel = run_fjmig(base, plans, playbooks, inventory, outputs, parallel=4)
    ideal = min(4, os.cpu_count() or 1)
    speedup = serial / parallel
    print(f"{steps} no-op steps")
    print(f"bare ansible-runner (sequential): {bare:7.2f} s  ({bare / steps * 1000:.0f} ms/step)")
    print(f"fjmig run --parallel 1:           {serial:7.2f} s  ({serial / steps * 1000:.0f} ms/step)"
          f"  ratio {serial / bare:.2f}x (goal <= 1.2x)")
    print(f"fjmig run --parallel 4:           {parallel:7.2f} s  speed-up {speedup:.2f}x of ideal {ideal}x = "
          f"{speedup / ideal:.0%} (goal >= 85%)")


if __name__ == "__main__":
    main()
