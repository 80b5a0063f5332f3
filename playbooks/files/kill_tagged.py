# Kill every process whose environment holds FJMIG_JOB_TOKEN=<one of the tokens in argv[1] (JSON)>,
# and print how many. Used by cancel.yml on the hosts of a cancelled or killed job: the job's
# remote commands (e.g. an rsync pushing to the target) do not die with the SSH session that
# started them. The processes are stopped first, then killed, so none forks away in between.
import contextlib
import json
import os
import signal
import sys

tokens = {b"FJMIG_JOB_TOKEN=" + t.encode() for t in json.loads(sys.argv[1]) if t}
spared = {os.getpid(), os.getppid()}
victims = []
for name in os.listdir("/proc"):
    if not name.isdigit() or int(name) in spared:
        continue
    try:
        with open(f"/proc/{name}/environ", "rb") as handle:
            environ = handle.read().split(b"\0")
    except OSError:
        continue
    if tokens.intersection(environ):
        victims.append(int(name))
for sig in (signal.SIGSTOP, signal.SIGKILL):
    for pid in victims:
        with contextlib.suppress(OSError):  # gone already
            os.kill(pid, sig)
print(len(victims))
