# The cutover's dead-man's switch, on the source host (cutover.yml, cancel.yml; docs/EXECUTION.md).
#
# Before the freeze stops the service, `arm` starts a watchdog on this host with a deadline. If the
# control node has not committed the switch by then, the watchdog starts the service again here,
# where it was, with no help from the control node (a control node killed, or cut off, during the
# freeze must not leave users without service). The switch's commit and the watchdog's abort
# exclude each other through one atomic decision: whoever creates the attempt's `decision`
# directory first (mkdir either creates it or fails) decides. The control node commits before it
# starts the target or switches any name; when the abort won, it does neither.
#
#   arm BEGAN STATE ATTEMPT SECONDS NOT_AFTER -- START_ARGV...   arm the switch (prints JSON;
#       BEGAN: the epoch the shell began arming at, for the time arming took)
#   resolve STATE                                          decide every undecided attempt as
#       aborted (starting the service here again), report every attempt (JSON) and remove STATE
#
# The commit is one shell command run right after the final sync, in the freeze's own task
# (files/freeze_commit.sh through action_plugins/fjmig_raw.py: no Python start, no task of its own
# in the freeze window): mkdir STATE/ATTEMPT/decision, then stop the watchdog.
# STATE (/run/fjmig/freeze/<service key>) is on tmpfs and the watchdog is a plain process: neither
# outlives a reboot. The watchdog carries no job token, so cancelling the job does not stop it; it
# exits once the attempt is decided.
# Standard library only; run with `python3 -IS -c`.
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time


def decide(attempt_dir, who):
    """Take the attempt's decision for WHO; whether WHO got it (exactly one party ever does)."""
    try:
        os.mkdir(os.path.join(attempt_dir, "decision"), 0o700)
    except FileExistsError:
        return False
    with open(os.path.join(attempt_dir, "decision", "by"), "w", encoding="utf-8") as handle:
        handle.write(f"{who} {time.time():.3f}\n")
    return True


def read(path, default=None):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError:
        return default


def watchdog_pid(attempt_dir, attempt):
    """The attempt's watchdog, if it still runs (its command line names the attempt: a recycled
    pid is never taken for it)."""
    text = read(os.path.join(attempt_dir, "watchdog.pid"))
    if not text:
        return None
    pid = int(text.split()[0])
    cmdline = read(f"/proc/{pid}/cmdline", "")
    return pid if attempt in cmdline.split("\0") else None


def stop_watchdog(attempt_dir, attempt, timeout=30.0):
    """Stop an attempt's watchdog, and wait until it is gone: one that took the decision ignores
    the signal and finishes starting the service first."""
    pid = watchdog_pid(attempt_dir, attempt)
    if pid is None:
        return
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while watchdog_pid(attempt_dir, attempt) is not None and time.monotonic() < deadline:
        time.sleep(0.02)


def restore(attempt_dir, who):
    """Start the service here again (the abort won), recording when and how it went."""
    armed = json.loads(read(os.path.join(attempt_dir, "armed.json"), "{}"))
    done = subprocess.run(armed["start"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, check=False)
    with open(os.path.join(attempt_dir, "restored.json"), "w", encoding="utf-8") as handle:
        json.dump({"by": who, "at": time.time(), "rc": done.returncode}, handle)


def report(attempt_dir, attempt):
    armed = json.loads(read(os.path.join(attempt_dir, "armed.json"), "{}"))
    by_path = os.path.join(attempt_dir, "decision", "by")
    by = (read(by_path, "") or "").split()
    decided_at = float(by[1]) if len(by) > 1 else None
    if by and decided_at is None:  # the commit writes no time (no `date` in the freeze window): when it wrote
        with contextlib.suppress(OSError):
            decided_at = os.stat(by_path).st_mtime
    restored = json.loads(read(os.path.join(attempt_dir, "restored.json"), "null") or "null")
    entry = {"attempt": attempt, "armed_at": armed.get("armed_at"), "deadline": armed.get("deadline"),
             "decision": by[0] if by else None, "decided_at": decided_at}
    if restored:
        entry.update(restored_at=restored["at"], restored_by=restored["by"], restore_rc=restored["rc"])
    return entry


def watch(attempt_dir, deadline):
    """The watchdog: at the deadline, abort unless the attempt was decided."""
    while True:
        left = deadline - time.time()
        if left <= 0:
            break
        time.sleep(min(left, 60))
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # from here on it finishes what it decides
    if decide(attempt_dir, "aborted"):
        restore(attempt_dir, "watchdog")


def arm(began, state, attempt, seconds, not_after, start):
    os.makedirs(state, mode=0o700, exist_ok=True)
    previous = []
    for other in sorted(os.listdir(state)):
        other_dir = os.path.join(state, other)
        if other == attempt or not os.path.isdir(other_dir):
            continue
        decide(other_dir, "superseded")  # an older attempt's watchdog must never act during this freeze
        stop_watchdog(other_dir, other)
        previous.append(report(other_dir, other))
        shutil.rmtree(other_dir, ignore_errors=True)
    attempt_dir = os.path.join(state, attempt)
    os.mkdir(attempt_dir, 0o700)
    now = time.time()
    deadline = now + seconds if not_after <= 0 else min(now + seconds, not_after)
    with open(os.path.join(attempt_dir, "armed.json"), "w", encoding="utf-8") as handle:
        json.dump({"armed_at": now, "deadline": deadline, "start": start}, handle)
    ready_read, ready_write = os.pipe()
    if os.fork() == 0:  # the watchdog: detached from the SSH session that armed it
        os.close(ready_read)
        os.setsid()
        if os.fork() != 0:
            os._exit(0)
        try:
            os.chdir("/")
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            # its pid and start time (field 22 of /proc/PID/stat), which the commit matches with
            # shell builtins: a recycled pid is never signalled
            started = read("/proc/self/stat", "").rsplit(")", 1)[1].split()[19]
            with open(os.path.join(attempt_dir, "watchdog.pid"), "w", encoding="ascii") as handle:
                handle.write(f"{os.getpid()} {started}\n")
            os.write(ready_write, b"x")
            os.close(ready_write)
            watch(attempt_dir, deadline)
        finally:
            os._exit(0)
    os.close(ready_write)
    ready = os.read(ready_read, 1)  # the watchdog runs and has written its pid: a commit can stop it
    os.wait()
    if ready != b"x":
        sys.stderr.write("freeze.py: the watchdog did not start\n")
        sys.exit(1)
    # took_s: how long arming took since the shell began it (BEGAN), Python's start included: the
    # service still ran then.
    print(json.dumps({"armed_at": now, "deadline": deadline, "took_s": round(max(0.0, time.time() - began), 4),
                      "previous": previous}))


def resolve(state):
    outcome = []
    if os.path.isdir(state):
        for attempt in sorted(os.listdir(state)):
            attempt_dir = os.path.join(state, attempt)
            if not os.path.isdir(attempt_dir):
                continue
            if decide(attempt_dir, "aborted"):
                stop_watchdog(attempt_dir, attempt)
                restore(attempt_dir, "control")
            else:
                stop_watchdog(attempt_dir, attempt)
            outcome.append(report(attempt_dir, attempt))
        shutil.rmtree(state, ignore_errors=True)
    print(json.dumps(outcome))


def main(argv):
    if len(argv) >= 7 and argv[0] == "arm" and argv[6] == "--":
        arm(float(argv[1]), argv[2], argv[3], float(argv[4]), float(argv[5]), argv[7:])
    elif len(argv) == 2 and argv[0] == "resolve":
        resolve(argv[1])
    else:
        sys.stderr.write("usage: freeze.py arm BEGAN STATE ATTEMPT SECONDS NOT_AFTER -- START_ARGV...\n"
                         "       freeze.py resolve STATE\n")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
