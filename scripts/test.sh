#!/usr/bin/env bash
# README command 2: set up, then run every test tier (unit, test-guest KVM, real-kernel KVM, CLI) and end with
# the line "N passed, N failed[, N skipped]". Exits non-zero when any test fails.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }

# The kvm module may be loaded without its device node (no udev in a container): create it from the
# module's dev number, as udev would, so the KVM tests run natively.
if [ ! -e /dev/kvm ] && [ -r /sys/class/misc/kvm/dev ]; then
  IFS=: read -r kvm_major kvm_minor < /sys/class/misc/kvm/dev
  SUDO=; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  if $SUDO mknod -m 0660 /dev/kvm c "$kvm_major" "$kvm_minor" 2>/dev/null; then
    echo "NOTE: created /dev/kvm (c $kvm_major:$kvm_minor) from /sys/class/misc/kvm/dev"
  else
    echo "NOTE: the kvm module is loaded but /dev/kvm could not be created (mknod c $kvm_major:$kvm_minor failed)"
  fi
fi
kvm_mode="not run (no /dev/kvm and no kvm module on this machine)"
if [ -e /dev/kvm ]; then
  if exec 3<>/dev/kvm 2>/dev/null; then
    exec 3>&-
    kvm_kind=native
    [ -d /sys/module/kvm_pvm ] && kvm_kind="native (kvm_pvm: software KVM, guest user space cannot run)"
    kvm_mode="$kvm_kind, /dev/kvm"
  else
    kvm_mode="not run (/dev/kvm exists but cannot be opened)"
  fi
elif [ -e /sys/module/kvm ]; then
  kvm_mode="not run (the kvm module is loaded but publishes no device number)"
fi

nested=0
if [ ! -e /dev/kvm ]; then
  # Opt-in (FLINT_NESTED_KVM=1): the KVM tests run again inside a nested-KVM VM, L1 on one emulated CPU. Not in CI:
  # L1 sometimes hangs (with two CPUs often, with one it once did for a whole 25-minute run; docs/kvm-runs/README.md).
  if [ "${FLINT_NESTED_KVM:-0}" = 1 ] && command -v qemu-system-x86_64 >/dev/null; then
    nested=1
    kvm_mode="nested (tests/nested-kvm: kvm_amd under QEMU TCG)"
    echo "NOTE: /dev/kvm is absent on this machine: the KVM tests (trait Needs=kvm) skip in the main run and then run"
    echo "      inside a nested-KVM VM (tests/nested-kvm: QEMU TCG with emulated SVM, Debian's kernel with kvm_amd)."
  else
    echo "NOTE: /dev/kvm is absent on this machine: the KVM tiers (test guest, real kernel) will be reported as skipped."
    echo "      FLINT_NESTED_KVM=1 runs them again inside a nested-KVM VM (tests/nested-kvm; slow, not reliable enough for CI)."
  fi
fi

log=artifacts/test-output.txt
mkdir -p artifacts
dotnet test Flint.sln -c Release --nologo 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}

# Sum the per-assembly summaries ("Passed!  - Failed: 0, Passed: 12, Skipped: 1, Total: 13, ...").
read -r passed failed skipped < <(grep -E '(Passed|Failed)!  - Failed:' "$log" | sed -E 's/.*Failed: *([0-9]+), Passed: *([0-9]+), Skipped: *([0-9]+).*/\2 \1 \3/' \
  | awk '{p+=$1; f+=$2; s+=$3} END {print p+0, f+0, s+0}')
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi  # a build or runner failure counts as a failure

# The KVM tests again, inside the nested-KVM VM, where this machine has no /dev/kvm. They were counted as skipped
# above; their results here replace those skips.
if [ $nested = 1 ]; then
  nlog=artifacts/test-output-nested-kvm.txt
  mem_mib=$(awk '/MemTotal/{m=int($2/1024*2/3); print (m > 16384 ? 16384 : m)}' /proc/meminfo)
  # One test class at a time: L1 has this machine's few cores, and parallel L2 guests there run past test timeouts.
  tests/nested-kvm/run.sh --mem "${mem_mib}M" --timeout 1500 -- \
    dotnet test tests/Flint.Vmm.Tests -c Release --no-build --nologo --filter "Needs=kvm" -- xUnit.ParallelizeTestCollections=false 2>&1 | tee "$nlog"
  nrc=${PIPESTATUS[0]}
  read -r np nf ns < <(grep -E '(Passed|Failed)!  - Failed:' "$nlog" | sed -E 's/.*Failed: *([0-9]+), Passed: *([0-9]+), Skipped: *([0-9]+).*/\2 \1 \3/' \
    | awk '{p+=$1; f+=$2; s+=$3} END {print p+0, f+0, s+0}')
  l1_broken=0
  if [ $((np + nf)) -eq 0 ] && { [ "$nrc" -eq 124 ] || [ "$nrc" -eq 125 ]; }; then
    # L1 never started the tests (125) or hung before any result (124): the environment, not a test. Say so loudly
    # and leave the KVM tests counted as skipped, as on any machine without KVM.
    l1_broken=1
    kvm_mode="not run (the nested-KVM VM $([ "$nrc" -eq 124 ] && echo "hung" || echo "did not start"))"
    echo "NOTE: the nested-KVM VM $([ "$nrc" -eq 124 ] && echo "hung" || echo "did not start") (rc=$nrc);" \
         "the KVM tests stay skipped. Its console is kept under artifacts/nested-kvm/run.*"
  elif [ "$nrc" -ne 0 ] && [ "$nf" -eq 0 ]; then nf=1; fi
  echo "nested KVM: $np passed, $nf failed, $ns skipped (rc=$nrc)"
  # The emulated SVM itself occasionally kills an L2 guest under load (a triple fault in the test guest's bare
  # `outb` loop, which cannot fault by itself; see docs/kvm-runs). Tests that failed get one rerun, alone, and
  # count as failed only if they fail again; the log keeps both runs.
  failed_tests=$(grep -oE '^  Failed Flint\.Vmm\.Tests\.[A-Za-z0-9_.]+' "$nlog" | awk '{print $2}' | sort -u)
  if [ "$nf" -gt 0 ] && [ -n "$failed_tests" ] && [ "$(echo "$failed_tests" | wc -l)" -eq "$nf" ]; then
    filter=$(echo "$failed_tests" | sed 's/^/FullyQualifiedName=/' | paste -sd'|')
    echo "nested KVM: rerunning once: $(echo $failed_tests)"
    tests/nested-kvm/run.sh --mem "${mem_mib}M" --timeout 1500 -- \
      dotnet test tests/Flint.Vmm.Tests -c Release --no-build --nologo --filter "$filter" 2>&1 | tee -a "$nlog.rerun"
    nrc=${PIPESTATUS[0]}
    read -r rp rf rs < <(grep -E '(Passed|Failed)!  - Failed:' "$nlog.rerun" | sed -E 's/.*Failed: *([0-9]+), Passed: *([0-9]+), Skipped: *([0-9]+).*/\2 \1 \3/' \
      | awk '{p+=$1; f+=$2; s+=$3} END {print p+0, f+0, s+0}')
    if [ $((rp + rf)) -eq 0 ] && { [ "$nrc" -eq 124 ] || [ "$nrc" -eq 125 ]; }; then
      echo "NOTE: the nested-KVM VM failed during the rerun (rc=$nrc): the first run's failures stand."
    else
      if [ "$nrc" -ne 0 ] && [ "$rf" -eq 0 ]; then rf=1; fi
      echo "nested KVM rerun: $rp passed, $rf failed (first-run failures that passed now: $rp)"
      np=$((np + rp)); nf=$rf
    fi
    nrc=1; [ "$nf" -eq 0 ] && nrc=0
  fi
  passed=$((passed + np)); failed=$((failed + nf)); skipped=$((skipped - np - nf + 0)); [ "$skipped" -lt 0 ] && skipped=0
  [ "$nrc" -ne 0 ] && [ $l1_broken = 0 ] && rc=1
fi

# The fuzz targets briefly (seed corpora and saved findings replayed, then seconds of random mutation each):
# a parser change that crashes on a known input fails here. The campaigns themselves: tests/fuzz/run.sh SECONDS.
if bash tests/fuzz/run.sh --ci > artifacts/fuzz-ci.log 2>&1; then
  echo "fuzz smoke: passed ($(tail -1 artifacts/fuzz-ci.log))"; passed=$((passed + 1))
else
  tail -20 artifacts/fuzz-ci.log; echo "fuzz smoke: FAILED (artifacts/fuzz-ci.log)"; failed=$((failed + 1)); rc=1
fi

# The benchmark harness in smoke mode (tiny counts): checks that bench/ still builds and measures end to end.
if bash bench/smoke-test.sh > artifacts/bench-smoke.log 2>&1; then
  echo "bench smoke: passed"; passed=$((passed + 1))
else
  tail -20 artifacts/bench-smoke.log; echo "bench smoke: FAILED (artifacts/bench-smoke.log)"; failed=$((failed + 1)); rc=1
fi

# The code-style check: every C# file as .editorconfig says (dotnet format whitespace + style, --verify-no-changes).
if bash scripts/format-check.sh > artifacts/format-check.log 2>&1; then
  echo "format check: passed"; passed=$((passed + 1))
else
  tail -20 artifacts/format-check.log; echo "format check: FAILED (artifacts/format-check.log; scripts/format-check.sh)"; failed=$((failed + 1)); rc=1
fi
echo "KVM tests: $kvm_mode"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$rc" -eq 0 ] && [ "$failed" -eq 0 ]
