#!/usr/bin/env bash
# README command 2: set up, then run every test tier (unit, test-guest KVM, real-kernel KVM, CLI) and end with
# the line "N passed, N failed[, N skipped]". Exits non-zero when any test fails.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }

if [ ! -e /dev/kvm ]; then
  echo "NOTE: /dev/kvm is absent on this machine: the KVM tiers (test guest, real kernel) will be reported as skipped."
fi

log=artifacts/test-output.txt
mkdir -p artifacts
dotnet test Flint.sln -c Release --nologo 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}

# Sum the per-assembly summaries ("Passed!  - Failed: 0, Passed: 12, Skipped: 1, Total: 13, ...").
read -r passed failed skipped < <(grep -E '(Passed|Failed)!  - Failed:' "$log" | sed -E 's/.*Failed: *([0-9]+), Passed: *([0-9]+), Skipped: *([0-9]+).*/\2 \1 \3/' \
  | awk '{p+=$1; f+=$2; s+=$3} END {print p+0, f+0, s+0}')
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi  # a build or runner failure counts as a failure

# The benchmark harness in smoke mode (tiny counts): checks that bench/ still builds and measures end to end.
if bash bench/smoke-test.sh > artifacts/bench-smoke.log 2>&1; then
  echo "bench smoke: passed"; passed=$((passed + 1))
else
  tail -20 artifacts/bench-smoke.log; echo "bench smoke: FAILED (artifacts/bench-smoke.log)"; failed=$((failed + 1)); rc=1
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$rc" -eq 0 ] && [ "$failed" -eq 0 ]
