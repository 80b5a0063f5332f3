# Commit a cutover's switch on its source host: take the freeze attempt's decision (mkdir either
# creates the directory or fails: exactly one of the switch and the watchdog ever gets it), then
# stop the attempt's watchdog, which the decision has made idle. The watchdog is found by its pid
# and start time (watchdog.pid: "PID STARTTIME", field 22 of /proc/PID/stat), so a recycled pid is
# never signalled. Prints "committed", or, when the watchdog decided first (it has started the
# service here again), its decision and the attempt's record, and exits 3. Plain sh, and shell
# builtins but mkdir: cutover.yml runs this in the freeze window, where every process started adds
# to the downtime (files/freeze.py).
# Usage: sh -c "$(cat freeze_commit.sh)" fjmig-commit ATTEMPT_DIR
set -f
d=$1
if mkdir "$d/decision" 2>/dev/null; then
  echo committed > "$d/decision/by"
  if { read -r pid started < "$d/watchdog.pid" && read -r stat < "/proc/$pid/stat"; } 2>/dev/null; then
    set -- ${stat##*) }
    shift 19
    [ "$1" = "$started" ] && kill "$pid"
  fi
  echo committed
else
  cat "$d/decision/by" "$d/armed.json" 2>/dev/null
  exit 3
fi
