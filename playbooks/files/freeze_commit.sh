# Commit a cutover's switch on its source host: take the freeze attempt's decision (mkdir either
# creates the directory or fails: exactly one of the switch and the watchdog ever gets it), then
# stop the attempt's watchdog, found by its command line (which names the attempt), never by a
# pid alone. Prints "committed", or, when the watchdog decided first (it has started the service
# here again), its decision and the attempt's record, and exits 3. Plain sh: cutover.yml runs this
# in the freeze window, where starting Python would add to the downtime (files/freeze.py).
# Usage: sh -c "$(cat freeze_commit.sh)" fjmig-commit ATTEMPT_DIR ATTEMPT
d=$1
attempt=$2
if mkdir "$d/decision" 2>/dev/null; then
  echo "committed $(date +%s.%N)" > "$d/decision/by"
  p=$(cat "$d/watchdog.pid" 2>/dev/null) && tr '\0' '\n' < "/proc/$p/cmdline" 2>/dev/null \
    | grep -qxF -- "$attempt" && kill "$p"
  echo committed
else
  cat "$d/decision/by" "$d/armed.json" 2>/dev/null
  exit 3
fi
