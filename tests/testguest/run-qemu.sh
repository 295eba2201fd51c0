#!/bin/bash
# Boot the Flint test guest under QEMU (microvm, TCG) against a virtio-blk disk with the
# test pattern, once read-write and once read-only, and check its serial output.
# Exits 0 only when every expected line appears and the guest reports fail=0.
# Env: QEMU (default qemu-system-x86_64), ACCEL (default tcg), KEEP=1 keeps the work dir.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
QEMU=${QEMU:-qemu-system-x86_64}
ACCEL=${ACCEL:-tcg}
SECTORS=64

command -v "$QEMU" >/dev/null || { echo "run-qemu: $QEMU not found" >&2; exit 2; }
flock "$HERE" make -s -C "$HERE" >&2 || { echo "run-qemu: build failed" >&2; exit 2; }
ELF=$HERE/out/testguest.elf
MKDISK=$HERE/out/mkdisk

W=$(mktemp -d)
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$W"' EXIT

# $1 = name, $2 = drive options suffix, $3 = guest cmdline
run_guest() {
  # acpi=off: only then does QEMU's microvm append virtio_mmio.device=512@0x...:<irq>
  # (auto-kernel-cmdline); the extra 4K entry points at an empty transport (id 0) and
  # exercises the 4K size form and skipping of non-blk devices.
  timeout 60 "$QEMU" -M microvm,x-option-roms=off,rtc=off,acpi=off -accel "$ACCEL" -m 64 \
    -display none -monitor none -nodefaults -no-reboot \
    -kernel "$ELF" -append "$3" \
    -global virtio-mmio.force-legacy=false \
    -drive "file=$W/disk.img,if=none,id=d,format=raw$2" \
    -device virtio-blk-device,drive=d,serial=flint-tg \
    -serial stdio </dev/null >"$W/$1.log" 2>"$W/$1.err"
  local rc=$?
  echo "---- $1 (qemu rc=$rc)"
  cat "$W/$1.log"
  [ -s "$W/$1.err" ] && { echo "---- $1 stderr"; cat "$W/$1.err"; }
  return $rc
}

FAILS=0
expect() { # $1 = log, rest = exact lines
  local log=$1; shift
  for l in "$@"; do
    grep -qxF -- "$l" "$log" || { echo "run-qemu: missing line in $(basename "$log"): '$l'"; FAILS=$((FAILS+1)); }
  done
  if grep -q '^FAIL ' "$log"; then echo "run-qemu: FAIL lines in $(basename "$log")"; FAILS=$((FAILS+1)); fi
}

CMD="tg.boottimer=0 tg.tests=serial,blk,pio tg.pio=1000 virtio_mmio.device=4K@0xfeb00000:5"

# read-write
"$MKDISK" "$W/disk.img" $SECTORS
run_guest rw "" "$CMD" || { echo "run-qemu: qemu rw failed or timed out"; FAILS=$((FAILS+1)); }
expect "$W/rw.log" "FLINT-TESTGUEST start" "PASS serial" "PASS blk-init" "PASS blk-read" \
  "blk id=flint-tg" "PASS blk-id" "PASS blk-write" "PASS blk-flush" "PASS blk-unsupp" \
  "PASS blk-irq" "PASS blk" "pio done 1000" "PASS pio" "FLINT-TESTGUEST done pass=10 fail=0"
"$MKDISK" "$W/expect-rw.img" $SECTORS 3
cmp -s "$W/disk.img" "$W/expect-rw.img" || { echo "run-qemu: rw disk does not hold the guest's write to sector 3"; FAILS=$((FAILS+1)); }

# read-only
"$MKDISK" "$W/disk.img" $SECTORS
run_guest ro ",readonly=on" "$CMD" || { echo "run-qemu: qemu ro failed or timed out"; FAILS=$((FAILS+1)); }
expect "$W/ro.log" "FLINT-TESTGUEST start" "PASS serial" "PASS blk-init" "PASS blk-read" \
  "blk id=flint-tg" "PASS blk-id" "PASS blk-ro" "PASS blk-unsupp" \
  "PASS blk-irq" "PASS blk" "pio done 1000" "PASS pio" "FLINT-TESTGUEST done pass=9 fail=0"
"$MKDISK" "$W/expect-ro.img" $SECTORS
cmp -s "$W/disk.img" "$W/expect-ro.img" || { echo "run-qemu: ro disk was modified"; FAILS=$((FAILS+1)); }

# blkbench (throughput mode): each mode completes its requests; a malformed option fails cleanly
"$MKDISK" "$W/disk.img" $SECTORS
for spec in seq-read,64,4096,4 rand-read,64 seq-write,32,8192,8 rand-write,32,512; do
  run_guest "bench-${spec%%,*}" "" "tg.boottimer=0 tg.tests=blkbench tg.blk.bench=$spec" || { echo "run-qemu: qemu blkbench $spec failed or timed out"; FAILS=$((FAILS+1)); }
  log="$W/bench-${spec%%,*}.log"
  expect "$log" "blkbench start" "PASS blkbench" "FLINT-TESTGUEST done pass=1 fail=0"
  grep -qE "^blkbench done ops=$(echo "$spec" | cut -d, -f2) bytes=[0-9]+ cycles=[0-9]+ tsc_khz=[0-9]+ us=[0-9]+$" "$log" || { echo "run-qemu: no blkbench done line for $spec"; FAILS=$((FAILS+1)); }
done
run_guest bench-bad "" "tg.boottimer=0 tg.tests=blkbench tg.blk.bench=seq-read,64,1000" || true
grep -qxF "FLINT-TESTGUEST done pass=0 fail=1" "$W/bench-bad.log" && grep -q "^FAIL blkbench: tg.blk.bench: bs a multiple of 512" "$W/bench-bad.log" || { echo "run-qemu: a bad tg.blk.bench was not refused"; FAILS=$((FAILS+1)); }

if [ $FAILS -eq 0 ]; then echo "run-qemu: OK"; exit 0; fi
echo "run-qemu: $FAILS problem(s)"; exit 1
