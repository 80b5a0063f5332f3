"""Time `fjmig lab up` and `fjmig lab down` on the shipped plans (goal: up in under 5 s).

    sudo .venv/bin/python bench/lab_up.py [--runs 3] [--name fjbench] [--index 6] [--plans migration_plans]

Runs the real command line (as a user would) RUNS times, each followed by `lab down`, and prints
the wall time of each, the median, the CPU time the commands used, and the load average (the
machine may be shared: CPU seconds are the steadier number). Needs root.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(argv: list[str]) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """Wall seconds, CPU seconds (user+sys of the command and what it waited for), result."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    result = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=ROOT,
                            env={**os.environ, "NO_COLOR": "1"})
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--name", default="fjbench")
    parser.add_argument("--index", default="6")
    parser.add_argument("--plans", default=str(ROOT / "migration_plans"))
    parser.add_argument("--scale", default=None, help="MB per GB (default: the lab's default)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/lab_up.py needs root (the lab builds network namespaces)", file=sys.stderr)
        return 1
    fjmig = [sys.executable, "-m", "orchestrator"]
    ups, downs, up_cpu, down_cpu, inner = [], [], [], [], []
    with tempfile.TemporaryDirectory(prefix="fjmig-bench-") as tmp:
        state = str(Path(tmp) / "lab")
        extra = ["--scale", args.scale] if args.scale else []
        for run in range(1, args.runs + 1):
            load = os.getloadavg()[0]
            wall, cpu, result = timed([*fjmig, "lab", "up", args.plans, "--state-dir", state, "--name", args.name,
                                       "--index", args.index, "--format", "json", *extra])
            if result.returncode != 0:
                print(result.stderr, file=sys.stderr)
                timed([*fjmig, "lab", "down", "--state-dir", state, "--name", args.name])
                return 1
            inner.append(float(json.loads(result.stdout)["seconds"]))
            down_wall, d_cpu, down = timed([*fjmig, "lab", "down", "--state-dir", state])
            if down.returncode != 0:
                print(down.stderr, file=sys.stderr)
                return 1
            ups.append(wall)
            up_cpu.append(cpu)
            downs.append(down_wall)
            down_cpu.append(d_cpu)
            print(f"run {run}: lab up {wall:.2f} s (library {inner[-1]:.2f} s, CPU {cpu:.2f} s), "
                  f"lab down {down_wall:.2f} s (CPU {d_cpu:.2f} s), load average before {load:.1f}")
    print(f"median of {args.runs}: `fjmig lab up` {statistics.median(ups):.2f} s "
          f"(lab_up() {statistics.median(inner):.2f} s, CPU {statistics.median(up_cpu):.2f} s), "
          f"`fjmig lab down` {statistics.median(downs):.2f} s on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
