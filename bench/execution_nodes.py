"""Execution nodes: what running jobs through a node costs, side by side with local jobs, on the lab.

    python bench/execution_nodes.py overhead [--departments 50] [--rounds 2]
    python bench/execution_nodes.py datapath [--gb 1.0] [--rounds 3] [--dir /dev/shm]
    python bench/execution_nodes.py demo [PLANS_DIR]

Every part builds a lab with execution nodes of its own (names fjnd*, index 4), and in `overhead`
and `datapath` no data center is hidden, so that the same jobs can run on the control node too:
1. overhead: bench/executor_overhead.py's 100 no-op steps (50 departments: a decommission, then a
   close; no-op plays on `localhost`) run by the executor (`--parallel 1`) in a child process,
   locally and through one node (transmit | ssh | `ansible-runner worker` with the node's playbook
   server | process), alternated for `--rounds`. Reported: wall time per step, and the control
   node's CPU seconds per step: the child's and its waited-for descendants' (os.wait4: its ssh
   clients, and locally its playbook server and every playbook); the node's own processes are the
   node's CPU, not the control node's, even though the lab's node shares this machine. Also, for
   `--cold-rounds`, through the node without its playbook server (`--no-playbook-server`: a plain
   `ansible-runner worker` and a fresh `ansible-playbook` per job on the node).
   Goals: through a node, per-step overhead close to local; control-node CPU under a third of local.
2. datapath: presync + cutover of a `--gb` GB system (`fjmig run --only ... --until cutover`, one
   job), locally and through the node, alternated for `--rounds`, after `sync`, with the lab's data
   on `--dir` (tmpfs by default, as bench/data_path.py). Goal: through a node within 1.1x of local.
3. demo: the shipped plans migrated end to end as `fjmig demo` does (every gated cutover approved,
   `--parallel 4`, windows not enforced), on a lab without nodes, then on one with a node per
   target group and the municipal data centers hidden from the control node. Reported: makespan.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

NODE = "node-provincial-cloud"
LAB_PLANS = ROOT / "tests" / "fixtures" / "nodes"
INDEX = [2]
"""The lab's index: 2, or 4 for `demo` (so that it can run beside the others)."""


def lab(plans: Path, state: Path, name: str, **kwargs: object):  # type: ignore[no-untyped-def]
    import contextlib

    from orchestrator.lab import lab_down, lab_up
    from orchestrator.plans.loader import load_plans

    @contextlib.contextmanager
    def held():  # type: ignore[no-untyped-def]
        try:
            yield lab_up(load_plans(plans), state, name=name, index=INDEX[0], held=True, **kwargs)
        finally:
            lab_down(state, name=name)

    return held()


def local_inventory(inventory: Path, out: Path) -> Path:
    """The lab's inventory without its execution nodes: every job runs on the control node."""
    data = json.loads(inventory.read_text())
    data["all"]["children"].pop("fjmig_execution_nodes", None)
    data["all"]["children"].pop("node", None)
    for name in [h for h, v in data["all"]["hosts"].items() if (v or {}).get("fjmig_role") == "node"]:
        del data["all"]["hosts"][name]
    out.write_text(json.dumps(data))
    return out


# -- 1. per-step overhead and control-node CPU --------------------------------------------------


def overhead_inventory(base: Path, departments: int, lab_inventory: Path) -> tuple[Path, Path]:
    """The no-op steps' hosts (local connection, wherever the job runs), and a copy that declares
    the lab's node as their execution node."""
    hosts = {f"host-{i:03d}": {"ansible_connection": "local"} for i in range(departments)}
    hosts["localhost"] = {"ansible_connection": "local"}
    local = {"all": {"hosts": hosts, "vars": {"ansible_python_interpreter": "/usr/bin/python3"},
                     "children": {"bench": {"hosts": dict.fromkeys(hosts)}}}}
    lab_all = json.loads(lab_inventory.read_text())["all"]
    node_vars = {**lab_all["vars"], **lab_all["hosts"][NODE], "fjmig_node_serves": ["bench"]}
    remote = json.loads(json.dumps(local))
    remote["all"]["children"]["fjmig_execution_nodes"] = {"hosts": {NODE: None}}
    remote["all"]["hosts"][NODE] = node_vars
    paths = base / "inventory-local.json", base / "inventory-node.json"
    paths[0].write_text(json.dumps(local))
    paths[1].write_text(json.dumps(remote))
    return paths


def child(plans: str, playbooks: str, inventory: str, outputs: str, journal: str, warm: str = "warm") -> None:
    """One run of the executor (the measured process)."""
    from orchestrator.execution.executor import Executor, RunOptions
    from orchestrator.execution.inventory import load_inventory
    from orchestrator.journal import Journal
    from orchestrator.plans.loader import load_plans

    plan_set = load_plans(plans)
    inv = load_inventory(Path(inventory), [Path(outputs)])
    with Journal.open(Path(journal)) as opened:
        opened.lock()
        options = RunOptions(parallel=1, work_dir=Path(journal).with_suffix(".jobs"), playbooks_dir=Path(playbooks),
                             operator="bench", playbook_server=warm == "warm")
        started = time.perf_counter()
        summary = Executor(plan_set, inv, opened, options).run()
        print(json.dumps({"seconds": time.perf_counter() - started, "status": summary.status,
                          "messages": dict(list(summary.messages.items())[:3])}))


def measured(argv: list[str]) -> tuple[dict, float]:
    """Run ARGV; what it printed and its CPU seconds with everything it waited for."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv[:4]} failed: {out[-2000:]}")
    return json.loads(out.strip().splitlines()[-1]), usage.ru_utime + usage.ru_stime


def overhead(args: argparse.Namespace) -> None:
    from executor_overhead import setup

    with tempfile.TemporaryDirectory(prefix="fjnd-bench-") as tmp:
        base = Path(tmp)
        plans, playbooks, _, outputs = setup(base, args.departments)
        steps = 2 * args.departments
        with lab(LAB_PLANS, base / "lab", "fjndbo", execution_nodes=True, unroutable=[]) as state:
            inventories = overhead_inventory(base, args.departments, state.paths.inventory)
            figures: dict[str, list[tuple[float, float]]] = {"local": [], "node": [], "node, no server": []}
            variants = [("local", inventories[0], "warm"), ("node", inventories[1], "warm")]
            for n in range(args.rounds):
                cold = [("node, no server", inventories[1], "cold")] if n < args.cold_rounds else []
                for label, inventory, warm in variants + cold:
                    journal = base / f"{label}-{n}.db".replace(", ", "-").replace(" ", "-")
                    result, cpu = measured([sys.executable, __file__, "child", str(plans), str(playbooks),
                                            str(inventory), str(outputs), str(journal), warm])
                    if result["status"] != "succeeded":
                        raise SystemExit(f"{label} run {result['status']}: {result['messages']}")
                    figures[label].append((result["seconds"] / steps, cpu / steps))
    print(f"{steps} no-op steps, --parallel 1, {args.rounds} rounds each, alternated (medians)")
    for label in [name for name, rounds in figures.items() if rounds]:
        wall = median(w for w, _ in figures[label])
        cpu = median(c for _, c in figures[label])
        rounds = ", ".join(f"{w:.3f}/{c:.3f}" for w, c in figures[label])
        print(f"{label:>15}: {wall:.3f} s/step wall, {cpu:.3f} control-node CPU s/step  (rounds wall/cpu: {rounds})")
    local_cpu = median(c for _, c in figures["local"])
    node_cpu = median(c for _, c in figures["node"])
    local_wall = median(w for w, _ in figures["local"])
    node_wall = median(w for w, _ in figures["node"])
    print(f"through a node: {node_wall / local_wall:.2f}x the local wall time per step; control-node CPU "
          f"{node_cpu / local_cpu:.2f}x local (goal < 0.33x)")


# -- 2. the data path ---------------------------------------------------------------------------


def datapath(args: argparse.Namespace) -> None:
    from data_path import PLAN_GB, plan

    from orchestrator.journal import Journal

    with tempfile.TemporaryDirectory(prefix="fjnd-dp-", dir=args.dir) as tmp:
        base = Path(tmp)
        plans = base / "plans"
        plans.mkdir()
        (plans / "bench-dp.yaml").write_text(yaml.safe_dump(plan(PLAN_GB, 2 * args.rounds), allow_unicode=True))
        times: dict[str, list[float]] = {"local": [], "node": []}
        with lab(plans, base / "lab", "fjndbd", execution_nodes=True, unroutable=[],
                 scale_mb_per_gb=args.gb * 1000 / PLAN_GB) as state:
            inventories = {"node": state.paths.inventory,
                           "local": local_inventory(state.paths.inventory, base / "inventory-local.json")}
            system = iter(range(1, 2 * args.rounds + 1))
            for _ in range(args.rounds):
                for label in ("local", "node"):
                    journal = base / f"{label}.db"
                    gid = f"bench-dp/cold-{next(system)}"
                    os.sync()
                    done = subprocess.run([sys.executable, "-m", "orchestrator", "run", str(plans), "--inventory",
                                           str(inventories[label]), "--outputs", str(state.paths.outputs),
                                           "--journal", str(journal), "--only", gid, "--until", "cutover",
                                           "--ignore-windows"], capture_output=True, text=True, check=False)
                    if done.returncode != 0:
                        raise SystemExit(f"{label} {gid}: {done.stdout[-2000:]}{done.stderr[-2000:]}")
                    with Journal.open(journal, readonly=True) as j:
                        records = j.step_records()
                    durations = [records[f"{gid}:{kind}"].duration or 0.0 for kind in ("presync", "cutover")]
                    times[label].append(sum(durations))
                    target = state.outputs["targets"][gid]["host"]
                    shutil.rmtree(state.paths.srv(target) / gid.split("/")[1])  # (memory: the data is on tmpfs)
    local, node = median(times["local"]), median(times["node"])
    print(f"presync + cutover of {args.gb:g} GB (one job; journal durations), {args.rounds} rounds alternated")
    for label in ("local", "node"):
        rounds = ", ".join(f"{t:.2f}" for t in times[label])
        print(f"{label:>5}: median {median(times[label]):.2f} s  (rounds: {rounds})")
    print(f"through a node: {node / local:.2f}x local (goal <= 1.1x)")


# -- 3. the demo's makespan ---------------------------------------------------------------------


def demo(args: argparse.Namespace) -> None:
    from orchestrator.execution import runs
    from orchestrator.journal import Journal
    from orchestrator.plans.steps import build_graph
    from orchestrator.plans.valid import load_valid

    plans = load_valid(args.plans)
    results = {}
    for label, nodes in (("local", False), ("nodes", True)):
        with tempfile.TemporaryDirectory(prefix="fjnd-demo-") as tmp:
            base = Path(tmp)
            started = time.monotonic()
            with lab(Path(args.plans), base / "lab", "fjnddemo", execution_nodes=nodes) as state:
                up = time.monotonic() - started
                journal = base / "journal.db"
                with Journal.open(journal) as opened:
                    for step in build_graph(plans).steps.values():
                        if step.approval:
                            opened.approve(step.id, "demo")
                options = runs.options_for(journal, parallel=4, operator="demo", enforce_windows=False)
                run_started = time.monotonic()
                summary = runs.run(plans, runs.lab_targets(state.paths.state_dir), journal, options)
                run = time.monotonic() - run_started
                hidden = state.topology.hidden
            results[label] = (up, run, summary.status, summary.count("succeeded"), len(summary.states), hidden)
    for label, (up, run, status, ok, total, hidden) in results.items():
        where = f"; {len(hidden)} data centers reached only through their nodes" if hidden else ""
        print(f"{label:>5}: lab up {up:.1f} s, run {run:.0f} s ({run / 60:.1f} min), {status}: {ok}/{total} steps"
              f"{where}")
    print(f"makespan with nodes: {results['nodes'][1] / results['local'][1]:.2f}x without")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child(*sys.argv[2:8])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="part", required=True)
    one = sub.add_parser("overhead")
    one.add_argument("--departments", type=int, default=50)
    one.add_argument("--rounds", type=int, default=2)
    one.add_argument("--cold-rounds", type=int, default=1,
                     help="rounds also run through the node without its playbook server (default 1)")
    two = sub.add_parser("datapath")
    two.add_argument("--gb", type=float, default=1.0)
    two.add_argument("--rounds", type=int, default=3)
    two.add_argument("--dir", default="/dev/shm")
    three = sub.add_parser("demo")
    three.add_argument("plans", nargs="?", default=str(ROOT / "migration_plans"))
    args = parser.parse_args()
    print(f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; "
          f"CPU of this process before: {resource.getrusage(resource.RUSAGE_SELF).ru_utime:.1f} s")
    if args.part == "demo":
        INDEX[0] = 4
    {"overhead": overhead, "datapath": datapath, "demo": demo}[args.part](args)


if __name__ == "__main__":
    main()
