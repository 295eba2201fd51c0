#!/usr/bin/env bash
# CI check for the benchmark suite: runs `bash bench/run --smoke` (tiny counts, writes artifacts/bench/smoke/) and
# checks that the report and its charts were written. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
out=artifacts/bench/smoke
rm -rf "$out"
bash bench/run --smoke --out "$out"
for f in results.md results.json micro.json startup.svg memory.svg latency.svg boot.svg micro.svg bootmemory.svg apirate.svg block.svg block-iops.svg; do
  [ -s "$out/$f" ] || { echo "smoke-test: FAIL: $out/$f missing or empty"; exit 1; }
done
grep -q '^## 1\. Start-up' "$out/results.md" || { echo "smoke-test: FAIL: $out/results.md has no start-up table"; exit 1; }
grep -q '^## 4c\. Snapshots' "$out/results.md" || { echo "smoke-test: FAIL: $out/results.md has no snapshot table"; exit 1; }
grep -q '^## 5\. Micro-benchmarks' "$out/results.md" || { echo "smoke-test: FAIL: $out/results.md has no micro-benchmark table"; exit 1; }
for h in '^## 2b\. VMM memory after boot' '^## 3b\. API request rate' '^## 4c\. Block throughput and IOPS'; do
  grep -q "$h" "$out/results.md" || { echo "smoke-test: FAIL: $out/results.md has no table matching $h"; exit 1; }
done
echo "smoke-test: OK ($out/results.md)"
