#!/usr/bin/env bash
# One line per set-up step: `scripts/step.sh LABEL LOGNAME COMMAND...` runs COMMAND with all of its
# output in build/logs/LOGNAME.log and prints "LABEL ... done (Ns)". On failure it prints the last
# lines of the log and where the rest is, and exits with the command's status, so `make` stops there.
set -uo pipefail

label=$1 name=$2
shift 2
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOGS="$ROOT/build/logs"
mkdir -p "$LOGS"
log="$LOGS/$name.log"
printf '%-52s' "$label ..."
start=$SECONDS
"$@" >"$log" 2>&1 </dev/null
rc=$?
if [[ $rc -eq 0 ]]; then
  echo " done ($((SECONDS - start)) s)"
else
  echo " FAILED (exit $rc)"
  tail -n 25 "$log" | sed 's/^/  | /'
  echo "  full log: ${log#"$ROOT"/}"
fi
exit $rc
