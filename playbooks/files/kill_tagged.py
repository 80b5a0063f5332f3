# Kill every process whose environment holds FJMIG_JOB_TOKEN=<one of the tokens in argv[1] (JSON)>,
# and every SSH master connection the job's rsyncs kept open (tasks/rsync.yml names their socket
# ~/.fjmig/mux/<sha256(token)[:16]>-...: ssh retitles itself over its environment, so the token
# cannot find those), remove their sockets, and print how many processes. Used by cancel.yml on
# the hosts of a cancelled or killed job: the job's remote commands (e.g. an rsync pushing to the
# target) do not die with the SSH session that started them. The processes are stopped first,
# then killed, so none forks away in between.
import contextlib
import glob
import hashlib
import json
import os
import signal
import sys

given = [t for t in json.loads(sys.argv[1]) if t]
tokens = {b"FJMIG_JOB_TOKEN=" + t.encode() for t in given}
mux_dir = os.path.join(os.path.expanduser("~"), ".fjmig", "mux")
sockets = tuple(os.path.join(mux_dir, hashlib.sha256(t.encode()).hexdigest()[:16] + "-") for t in given)
masters = tuple(b"ssh: " + s.encode() for s in sockets)
spared = {os.getpid(), os.getppid()}
victims = []
for name in os.listdir("/proc"):
    if not name.isdigit() or int(name) in spared:
        continue
    try:
        with open(f"/proc/{name}/environ", "rb") as handle:
            tagged = bool(tokens.intersection(handle.read().split(b"\0")))
        if not tagged:
            with open(f"/proc/{name}/cmdline", "rb") as handle:
                tagged = handle.read().startswith(masters)
    except OSError:
        continue
    if tagged:
        victims.append(int(name))
for sig in (signal.SIGSTOP, signal.SIGKILL):
    for pid in victims:
        with contextlib.suppress(OSError):  # gone already
            os.kill(pid, sig)
for prefix in sockets:
    for path in glob.glob(glob.escape(prefix) + "*"):
        with contextlib.suppress(OSError):
            os.unlink(path)
print(len(victims))
