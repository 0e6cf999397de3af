#!/usr/bin/env bash
# make chaos: run the chaos suite (e2e TestChaos) and print one line per
# scenario run as it ends, the failures, and last the closing line
# "chaos: N passed, M failed". The whole test output is kept in chaos.out,
# every run's figures in chaos-results.jsonl, the processes' logs of every
# failed run in chaos-logs/<scenario>-run<n>/.
#   RUNS=n       runs of every scenario (default 1)
#   SCENARIO=re  regexp of scenario names (default: all); grouped, so that
#                'a|b' selects both (go test splits -run at a top-level |)
#   REPORT=1     then write docs/CHAOS.md from the runs (make chaos-report)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

runs=${RUNS:-1}
scenario=${SCENARIO:-.}
go=${GO:-go}
case $runs in '' | *[!0-9]* | 0) echo "chaos: RUNS=$runs: want a positive number" >&2; exit 2 ;; esac

# The page (REPORT=1) names the commit the runs were built from, not the
# one checked out when they end.
REVISION=${REVISION:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
export REVISION
rm -rf chaos-results.jsonl chaos.out chaos-logs
# About a minute per scenario run at most, with room to spare.
timeout=$((runs * 50 + 10))m
# The harness and the daemons are built with the race detector
# (E2E_RACE=1): a data race in either fails the run.
E2E_RACE=1 CHAOS_RESULTS=$PWD/chaos-results.jsonl CHAOS_LOGS=$PWD/chaos-logs "$go" test -race -count="$runs" -v -timeout "$timeout" \
	-run "TestChaos/($scenario)" ./e2e/ >chaos.out 2>&1 &
pid=$!
tail --pid="$pid" -n +1 -F chaos.out 2>/dev/null | grep --line-buffered -E '^chaos [a-z]' &
follow=$!
# Ctrl-C (or a TERM to this script) stops the test binary, a child of `go
# test`; the processes it started die with it (the harness ties them to it).
# bash runs a trap only between commands, so this waits with `wait`, which a
# signal interrupts, and waits again while the test binary winds down.
trap 'pkill -TERM -P "$pid" 2>/dev/null; kill -TERM "$pid" 2>/dev/null' INT TERM
while :; do
	wait "$pid"
	rc=$?
	kill -0 "$pid" 2>/dev/null || break
done
wait "$follow"

summary=$(grep -E '^chaos: [0-9]+ passed, [0-9]+ failed$' chaos.out | tail -n 1)
if [ -z "$summary" ]; then
	tail -n 60 chaos.out
	echo "make chaos: no scenario ran (exit $rc); full output in chaos.out"
	summary="chaos: 0 passed, 0 failed"
	[ "$rc" = 0 ] && rc=1
elif [ "$rc" != 0 ]; then
	grep -E -- '^\s*--- FAIL|_test\.go:[0-9]+: ' chaos.out | head -n 100
	echo "make chaos: failed (exit $rc); full output in chaos.out"
elif [ -n "${REPORT:-}" ]; then
	make --no-print-directory chaos-report || rc=$?
fi
echo "$summary"
exit "$rc"
