#!/usr/bin/env bash
# Runs scripts/test.sh several times in a row while a CPU hog keeps every
# core busy, to show that the tests hold on a loaded machine (CI runs on a
# 2-core machine shared with other work).
#
#   scripts/stress.sh                       # the whole suite, 3 runs
#   RUNS=5 scripts/stress.sh -run Limiter ./proxy
#
# The hog is `stress-ng --cpu N` (N = number of cores) when installed, else
# one shell busy loop per core. Arguments go to scripts/test.sh; -count=1 is
# added so no run is answered from the test cache. Exits non-zero if any
# run failed; each run's output is kept in $LOGDIR (default a temp dir).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${RUNS:-3}"
CPUS="$(nproc)"
LOGDIR="${LOGDIR:-$(mktemp -d -t edgeproxy-stress.XXXXXX)}"
mkdir -p "$LOGDIR"

hogs=()
stop_hogs() {
  for pid in "${hogs[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${hogs[@]}"; do wait "$pid" 2>/dev/null || true; done
  hogs=()
}
trap stop_hogs EXIT

if command -v stress-ng >/dev/null 2>&1; then
  stress-ng --cpu "$CPUS" --timeout 3h --quiet &
  hogs+=($!)
else
  for _ in $(seq "$CPUS"); do
    (while :; do :; done) &
    hogs+=($!)
  done
fi
echo "stress.sh: $CPUS CPU hog(s) running; $RUNS runs; logs in $LOGDIR" >&2

# test.sh defaults to ./... only when given no arguments at all, and this
# script always adds -count=1.
if [ "$#" -eq 0 ]; then
  set -- ./...
fi

failed=0
for i in $(seq "$RUNS"); do
  start=$(date +%s)
  if ./scripts/test.sh -count=1 "$@" >"$LOGDIR/run$i.log" 2>&1; then
    result=ok
  else
    result=FAIL
    failed=$((failed + 1))
  fi
  echo "stress.sh: run $i: $result ($(($(date +%s) - start)) s)" >&2
  if [ "$result" = FAIL ]; then
    grep -E -e '^(--- FAIL|FAIL|panic:)' -e '_test\.go:[0-9]+:' "$LOGDIR/run$i.log" | head -40 >&2 || true
  fi
done
stop_hogs
echo "stress.sh: $((RUNS - failed)) of $RUNS runs passed" >&2
[ "$failed" -eq 0 ]
