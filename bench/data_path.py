"""The data path: presync + cutover of a 1 GB system through `fjmig run` against a raw
`rsync -a` between the same two lab hosts, and the warm-migration downtime.

    python bench/data_path.py [--gb 1.0] [--change 0.05] [--rounds 3]

It builds a lab of its own (name `fjbench`, index 7) with `--rounds` cold systems and one warm
system of `--gb` GB each on one source host, then, once per round, side by side:
1. raw: `rsync -a` of a cold system's data from the source host to an empty directory on its
   target host, run on the source with the ssh options the playbooks use for host keys.
   Also, for reference, one rsync with the transport options fjmig's playbooks use
   (`--whole-file`, AES-GCM first) and no parallel streams.
2. fjmig: `fjmig run --only bench-dp/cold-N --until cutover` (presync and cutover back to back,
   which the executor runs as one job: cutover.yml with fjmig_with_presync).
   Every measurement starts after `sync`, so that no phase pays for flushing the one before.
   The lab's hosts keep their data in `--dir`, a tmpfs by default: in the lab every host and the
   control node share one disk, so the writeback of one copy stalls the next phase's journal
   commits and file creations (up to seconds on this machine's virtual disk), which separate
   machines do not do to each other. `--dir /var/tmp` measures on the disk.
   The medians of the rounds are reported, with every round (the raw copy varied by 10-30 % here).
3. Warm: `fjmig run --until presync`, then `--change` of the data is rewritten on the source,
   then `fjmig run --until cutover`. Downtime, measured twice: from the office, a probe fetches
   the system by its name every 10 ms during the cutover and the longest stretch without an
   answer is the downtime users saw; and the cutover playbook's own report (freeze to switch,
   journaled as the step's `downtime_s`).
Goals: presync + cutover within 1.1x of the raw copy; the warm cutover's downtime at
most 15% of a cold copy.
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
from statistics import median

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

PLAN_GB = 100.0


def plan(data_gb_in_plan: float, rounds: int = 1) -> dict:
    """Systems of the same size on one source host: `cold-N` for the data path (presync and
    cutover back to back, one per round), `warm` for the downtime (data rewritten between presync
    and cutover)."""
    def system(name: str, path: str) -> dict:
        return {
            "id": name, "name": name, "function": "f", "scope": "province", "frequency": "daily",
            "approved_by": "x", "approved_on": "2010-01-01", "funding_source": "fiscal",
            "classification": "unclassified", "status": "active", "host": "bench-src",
            "data": {"path": path, "size_gb": data_gb_in_plan, "daily_change_gb": 1}, "share": False,
        }

    return {
        "version": 1,
        "department": {"id": "bench-dp", "name": "基准", "level": "province", "city": None, "kind": "agency"},
        "datacenter": {"id": "bench-dc", "hosts": ["bench-src"]},
        "target": "provincial-cloud",
        "systems": [*(system(f"cold-{n}", f"/srv/cold-{n}") for n in range(1, rounds + 1)),
                    system("warm", "/srv/warm")],
        # a private network, so that the lab gives the department an office to probe from
        "private_networks": [{"id": "bench-net", "cidr": "172.20.9.0/24",
                              "systems": [*(f"cold-{n}" for n in range(1, rounds + 1)), "warm"],
                              "migrate_to": "extranet", "retain_approval": None}],
    }


PROBE = r"""
import os, socket, sys, time
name, port, stop_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]


def answers():
    try:  # resolve every time: the switch rewrites the office's hosts file
        with socket.create_connection((socket.gethostbyname(name), port), timeout=0.5) as conn:
            conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
            return conn.recv(5) == b"HTTP/"
    except OSError:
        return False


last_ok, longest = None, 0.0
while not os.path.exists(stop_file):
    now = time.monotonic()
    if answers():
        if last_ok is not None:
            longest = max(longest, now - last_ok)
        last_ok = now
    time.sleep(0.01)
print(f"{longest:.3f}")
"""


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
    parser.add_argument("--rounds", type=int, default=3, help="raw copy vs fjmig, side by side (default 3)")
    parser.add_argument("--dir", default="/dev/shm",
                        help="where the lab keeps the hosts' data (default /dev/shm, a tmpfs: see below)")
    args = parser.parse_args()

    from orchestrator.journal import Journal
    from orchestrator.lab import running_lab

    raws: list[float] = []
    runs: list[float] = []
    presyncs: list[float] = []
    cutovers: list[float] = []
    with tempfile.TemporaryDirectory(prefix="fjmig-dp-", dir=args.dir) as tmp:
        base = Path(tmp)
        plans = base / "plans"
        plans.mkdir()
        (plans / "bench-dp.yaml").write_text(yaml.safe_dump(plan(PLAN_GB, args.rounds), allow_unicode=True))
        scale = args.gb * 1000 / PLAN_GB  # MB per plan GB
        with running_lab(plans, base / "lab", name="fjbench", index=7, scale=scale) as lab:
            ssh = ("ssh -i /root/.ssh/fjmig_transfer -o UserKnownHostsFile=/root/.ssh/known_hosts "
                   "-o StrictHostKeyChecking=yes -o BatchMode=yes")

            def copy(system: str, *flags: str, ssh_command: str = ssh) -> float:
                target = lab.outputs["targets"][f"bench-dp/{system}"]
                # ssh hands the remote shell one string: quote it (the -e value has spaces).
                destination = f"root@{target['address']}:/srv/raw-copy/"
                argv = lab.ssh_argv("bench-src", shlex.join(["rsync", "-a", *flags, "-e", ssh_command,
                                                             f"/srv/{system}/", destination]))
                os.sync()
                started = time.perf_counter()
                subprocess.run(argv, check=True, capture_output=True)
                elapsed = time.perf_counter() - started
                subprocess.run(lab.ssh_argv(target["host"], "rm", "-rf", "/srv/raw-copy"), check=True)
                return elapsed

            journal = base / "journal.db"
            common = [str(plans), "--lab", str(lab.paths.state_dir), "--journal", str(journal)]
            tuned = copy("cold-1", "--whole-file",
                         ssh_command=f"{ssh} -c aes128-gcm@openssh.com,chacha20-poly1305@openssh.com")
            for n in range(1, args.rounds + 1):
                raws.append(copy(f"cold-{n}"))
                os.sync()
                runs.append(fjmig("run", *common, "--only", f"bench-dp/cold-{n}", "--until", "cutover"))
                with Journal.open(journal, readonly=True) as j:
                    records = j.step_records()
                presyncs.append(records[f"bench-dp/cold-{n}:presync"].duration or 0.0)
                cutovers.append(records[f"bench-dp/cold-{n}:cutover"].duration or 0.0)

            fjmig("run", *common, "--only", "bench-dp/warm", "--until", "presync")
            files = sorted((lab.paths.srv("bench-src") / "warm" / "records").iterdir())
            to_change = int(args.gb * 1e9 * args.change)
            changed = 0
            for path in files:  # rewrite whole files until `change` of the data is new
                if changed >= to_change:
                    break
                size = path.stat().st_size
                path.write_bytes(hashlib.shake_128(f"changed/{path.name}".encode()).digest(size))
                changed += size
            service = lab.outputs["services"]["bench-dp/warm"]
            stop_file = base / "probe.stop"
            probe = subprocess.Popen(lab.nsenter_argv("office-bench-dp", "python3", "-c", PROBE, service["name"],
                                                      str(service["port"]), str(stop_file)),
                                     stdout=subprocess.PIPE, text=True)
            time.sleep(0.5)
            os.sync()
            fjmig("run", *common, "--only", "bench-dp/warm", "--until", "cutover")
            time.sleep(0.3)
            stop_file.touch()
            seen_downtime = float(probe.communicate(timeout=30)[0].strip())
            with Journal.open(journal, readonly=True) as j:
                warm = j.step_records()["bench-dp/warm:cutover"]
            warm_cutover = warm.duration or 0.0
            reported_downtime = float((warm.stats or {}).get("downtime_s", "nan"))

    raw, presync_step, cutover_step = median(raws), median(presyncs), median(cutovers)
    both = median([p + c for p, c in zip(presyncs, cutovers, strict=True)])
    ratios = [(p + c) / r for p, c, r in zip(presyncs, cutovers, raws, strict=True)]
    print(f"data: {args.gb:g} GB per system, {args.rounds} rounds (medians); warm: {changed / 1e6:.0f} MB "
          f"({changed / (args.gb * 1e9):.0%}) rewritten between presync and cutover")
    print(f"raw rsync -a, source -> target (cold):     {raw:7.2f} s  ({args.gb * 1000 / raw:.0f} MB/s)"
          f"  rounds: {', '.join(f'{r:.2f}' for r in raws)}")
    print(f"  one rsync with -W and AES-GCM:           {tuned:7.2f} s  ({args.gb * 1000 / tuned:.0f} MB/s)")
    print(f"fjmig presync step, cold (journal):        {presync_step:7.2f} s  ({presync_step / raw:.2f}x raw)")
    print(f"fjmig cutover step, cold (journal):        {cutover_step:7.2f} s")
    print(f"fjmig run --until cutover, cold (command): {median(runs):7.2f} s")
    print(f"presync + cutover steps:                   {both:7.2f} s = {both / raw:.2f}x raw (goal <= 1.1x)")
    rounds = zip(presyncs, cutovers, raws, ratios, strict=True)
    print(f"  round by round (fjmig / the raw copy just before it): median {median(ratios):.2f}x; "
          f"{', '.join(f'{p:.2f}+{c:.2f}/{r:.2f}={x:.2f}x' for p, c, r, x in rounds)}")
    print(f"fjmig cutover step, warm (journal):        {warm_cutover:7.2f} s")
    print(f"warm cutover downtime seen by the office:  {seen_downtime:7.2f} s = {seen_downtime / raw:.0%} "
          "of a cold copy (goal <= 15%)")
    print(f"  as the playbook reported it:             {reported_downtime:7.2f} s = {reported_downtime / raw:.0%}")


if __name__ == "__main__":
    main()
