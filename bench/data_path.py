"""The data path: presync + cutover of a 1 GB system through `fjmig run` against a raw
`rsync -a` between the same two lab hosts, and the warm-migration downtime.

    python bench/data_path.py [--gb 1.0] [--change 0.05]

It builds a lab of its own (name `fjbench`, index 7) with one system of `--gb` GB, then:
1. raw: `rsync -a` of the data from the source host to an empty directory on the target host,
   run on the source exactly as the presync playbook runs it (same ssh options);
2. fjmig: `fjmig run --until presync`, then `--change` of the data is rewritten on the source,
   then `fjmig run --until cutover`; the cutover step's duration is the downtime (the service is
   stopped on the source for all of it).
Goals (issue 4): presync + cutover within 1.1x of the raw copy (with --change 0, i.e. nothing
changed between them); the warm cutover's downtime at most 15% of a cold copy.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

PLAN_GB = 100.0


def plan(data_gb_in_plan: float) -> dict:
    return {
        "version": 1,
        "department": {"id": "bench-dp", "name": "基准", "level": "province", "city": None, "kind": "agency"},
        "datacenter": {"id": "bench-dc", "hosts": ["bench-src"]},
        "target": "provincial-cloud",
        "systems": [{
            "id": "data", "name": "数据", "function": "f", "scope": "province", "frequency": "daily",
            "approved_by": "x", "approved_on": "2010-01-01", "funding_source": "fiscal",
            "classification": "unclassified", "status": "active", "host": "bench-src",
            "data": {"path": "/srv/data", "size_gb": data_gb_in_plan, "daily_change_gb": 1}, "share": False,
        }],
    }


def fjmig(*args: str) -> float:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "orchestrator", *args], capture_output=True, text=True,
                          cwd=ROOT, check=False, env={**os.environ, "NO_COLOR": "1"})
    if proc.returncode != 0:
        raise SystemExit(f"fjmig {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gb", type=float, default=1.0, help="data size in GB (default 1)")
    parser.add_argument("--change", type=float, default=0.05, help="share rewritten after presync (default 0.05)")
    args = parser.parse_args()

    from orchestrator.journal import Journal
    from orchestrator.lab import running_lab

    with tempfile.TemporaryDirectory(prefix="fjmig-dp-", dir="/var/tmp") as tmp:
        base = Path(tmp)
        plans = base / "plans"
        plans.mkdir()
        (plans / "bench-dp.yaml").write_text(yaml.safe_dump(plan(PLAN_GB), allow_unicode=True))
        scale = args.gb * 1000 / PLAN_GB  # MB per plan GB
        with running_lab(plans, base / "lab", name="fjbench", index=7, scale=scale) as lab:
            target = lab.outputs["targets"]["bench-dp/data"]
            ssh = ("ssh -i /root/.ssh/fjmig_transfer -o UserKnownHostsFile=/root/.ssh/known_hosts "
                   "-o StrictHostKeyChecking=yes -o BatchMode=yes")
            # ssh hands the remote shell one string: quote it (the -e value has spaces).
            raw_cmd = lab.ssh_argv("bench-src", shlex.join(["rsync", "-a", "-e", ssh, "/srv/data/",
                                                            f"root@{target['address']}:/srv/raw-copy/"]))
            started = time.perf_counter()
            subprocess.run(raw_cmd, check=True, capture_output=True)
            raw = time.perf_counter() - started
            subprocess.run(lab.ssh_argv(target["host"], "rm", "-rf", "/srv/raw-copy"), check=True)

            journal = base / "journal.db"
            common = [str(plans), "--lab", str(lab.paths.state_dir), "--journal", str(journal)]
            presync = fjmig("run", *common, "--until", "presync")
            files = sorted((lab.paths.srv("bench-src") / "data" / "records").iterdir())
            to_change = int(args.gb * 1e9 * args.change)
            changed = 0
            for path in files:  # rewrite whole files until `change` of the data is new
                if changed >= to_change:
                    break
                size = path.stat().st_size
                path.write_bytes(hashlib.shake_128(f"changed/{path.name}".encode()).digest(size))
                changed += size
            cutover = fjmig("run", *common, "--until", "cutover")
            with Journal.open(journal, readonly=True) as j:
                records = j.step_records()
            presync_step = records["bench-dp/data:presync"].duration or 0.0
            downtime = records["bench-dp/data:cutover"].duration or 0.0

    print(f"data: {args.gb:g} GB; rewritten after presync: {changed / 1e6:.0f} MB ({changed / (args.gb * 1e9):.0%})")
    print(f"raw rsync -a, source -> target (cold):   {raw:7.2f} s  ({args.gb * 1000 / raw:.0f} MB/s)")
    print(f"fjmig presync step (journal):            {presync_step:7.2f} s  ({presync_step / raw:.2f}x raw)")
    print(f"fjmig run --until presync (command):     {presync:7.2f} s")
    print(f"fjmig run --until cutover (command):     {cutover:7.2f} s")
    print(f"presync + cutover steps vs raw:          {(presync_step + downtime) / raw:.2f}x (goal <= 1.1x)")
    print(f"warm cutover downtime (cutover step):    {downtime:7.2f} s = {downtime / raw:.0%} of a cold copy "
          "(goal <= 15%)")


if __name__ == "__main__":
    main()
