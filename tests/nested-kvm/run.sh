#!/usr/bin/env bash
# Runs a command inside a Linux VM that has a working /dev/kvm, on a machine that has none.
#
# Why: Flint's KVM tiers need /dev/kvm. Where the host has none (a CI VM without nested virtualisation), QEMU's TCG
# can still emulate an AMD CPU with SVM and nested paging. This boots Debian's stock kernel ("L1") on such a CPU,
# loads kvm_amd, mounts this machine's / over virtio-9p, chroots into it and runs the command there. Flint's guests
# ("L2") then run under real KVM code (kvm_amd, not kvm_pvm). Everything is emulated, so it is slow and its timings
# only mean something as ratios between VMMs run the same way.
#
#   tests/nested-kvm/run.sh [--cpus N] [--mem SIZE] [--timeout S] -- COMMAND...
#   tests/nested-kvm/run.sh --probe        exit 0 when L1 gets a usable /dev/kvm
#
# The command runs as root in the current directory with this machine's PATH; its output streams here and its exit
# status is this script's (124 when L1 timed out, 125 when L1 failed to start the command).
# Needs: qemu-system-x86, busybox-static, cpio, kmod, and apt access for the kernel package (cached in
# artifacts/nested-kvm).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${FLINT_NESTED_CACHE:-$root/artifacts/nested-kvm}
# One L1 CPU by default: with two, L1 stalled in 3 of 3 TCP runs one day (its kernel reporting soft lockups on both
# CPUs), while one CPU passed every run and ran the 14 KVM tests in half the time (docs/kvm-runs/README.md).
cpus=1; mem=8G; limit=1800; probe=0
while [ $# -gt 0 ]; do
  case "$1" in
    --cpus) cpus=$2; shift 2;; --mem) mem=$2; shift 2;; --timeout) limit=$2; shift 2;;
    --probe) probe=1; shift;; --) shift; break;; *) break;;
  esac
done
[ $probe = 1 ] && set -- sh -c 'test -c /dev/kvm && python3 -c "import os; os.close(os.open(\"/dev/kvm\", os.O_RDWR))"'
[ $# -gt 0 ] || { echo "usage: $0 [--cpus N] [--mem SIZE] [--timeout S] -- COMMAND..." >&2; exit 2; }

# Preparing needs apt for the kernel package: without it there is no L1 at all, like an L1 that fails to start.
bash "$here/prepare.sh" "$cache" >&2 || { echo "nested-kvm: preparing L1 failed" >&2; exit 125; }
kver=$(cat "$cache/kver")

# One run directory on the shared filesystem carries the command in and its output and status out.
run=$(mktemp -d "$cache/run.XXXXXX")
trap 'rm -rf "$run"' EXIT
printf '%q ' "$@" > "$run/cmd"
{ echo "cd $(printf '%q' "$PWD")"; echo "export PATH=$(printf '%q' "$PATH") HOME=${HOME:-/root}"; } > "$run/env"
: > "$run/out"
tail -n +1 -f "$run/out" & tailer=$!
set +e
timeout "$limit" qemu-system-x86_64 -accel tcg,thread=multi -cpu max -smp "$cpus" -m "$mem" \
  -nographic -no-reboot -serial file:"$run/console" -monitor none \
  -kernel "$cache/vmlinuz" -initrd "$cache/initrd.gz" \
  -append "console=ttyS0 quiet loglevel=3 panic=-1 flint_nested_run=$run flint_nested_modules=$cache/modules flint_nested_keep=$root,$cache,$PWD" \
  -virtfs local,path=/,mount_tag=host,security_model=passthrough,id=host,multidevs=remap >/dev/null 2>"$run/qemu.err"
qrc=$?
set -e
sleep 0.3; kill $tailer 2>/dev/null || true; wait $tailer 2>/dev/null || true
if [ $qrc = 124 ]; then echo "nested-kvm: L1 timed out after ${limit}s" >&2; exit 124; fi
if [ ! -s "$run/rc" ]; then
  echo "nested-kvm: L1 ended without running the command (qemu rc=$qrc); its console:" >&2
  tail -n 40 "$run/console" "$run/qemu.err" >&2 || true
  trap - EXIT; echo "nested-kvm: kept $run" >&2
  exit 125
fi
exit "$(cat "$run/rc")"
