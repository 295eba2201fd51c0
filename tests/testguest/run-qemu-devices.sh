#!/bin/bash
# Boot the Flint test guest under QEMU (microvm, TCG) against the devices QEMU can
# provide and check its serial output:
#   1. rng + balloon: virtio-rng-device, virtio-balloon-device; the balloon target is set
#      through the HMP monitor before the guest runs (num_pages from config).
#   2. net + ping + MMDS V1: virtio-net-device on a tap in a network namespace this script
#      creates (172.16.0.1/24 and 169.254.169.254/32 on the tap); the kernel answers the
#      guest's ARP, `busybox ping -c 3 172.16.0.2` runs from the namespace while the guest
#      serves echo requests, and mmds-mock.py stands in for Firecracker's MMDS.
#   3. net + MMDS V2 (token PUT, GET with token, GET without -> 401).
# vsock and the real MMDS can't run here (no vhost-vsock, no MMDS in QEMU).
# Exits 0 only when every expected line appears and the guest reports fail=0; 2 when a
# prerequisite is missing (the message says which). Env: QEMU, ACCEL, KEEP=1,
# ONLY="rng-balloon net mmds-v2" (the parts to run).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
QEMU=${QEMU:-qemu-system-x86_64}
ACCEL=${ACCEL:-tcg}
ONLY=${ONLY:-rng-balloon net mmds-v2}

command -v "$QEMU" >/dev/null || { echo "run-qemu-devices: $QEMU not found" >&2; exit 2; }
flock "$HERE" make -s -C "$HERE" >&2 || { echo "run-qemu-devices: build failed" >&2; exit 2; }
ELF=$HERE/out/testguest.elf
command -v python3 >/dev/null || { echo "run-qemu-devices: python3 not found (monitor client, MMDS mock)" >&2; exit 2; }

W=$(mktemp -d)
NS=tgns-$$
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  ip netns del "$NS" 2>/dev/null
  [ "${KEEP:-0}" = 1 ] && echo "run-qemu-devices: kept $W" || rm -rf "$W"
}
trap cleanup EXIT

QARGS=(-M microvm,x-option-roms=off,rtc=off,acpi=off -accel "$ACCEL" -m 64
  -display none -nodefaults -no-reboot -kernel "$ELF" -global virtio-mmio.force-legacy=false)

FAILS=0
expect() { # $1 = log, rest = exact lines
  local log=$1; shift
  for l in "$@"; do
    grep -qxF -- "$l" "$log" || { echo "run-qemu-devices: missing line in $(basename "$log"): '$l'"; FAILS=$((FAILS+1)); }
  done
  if grep -q '^FAIL ' "$log"; then echo "run-qemu-devices: FAIL lines in $(basename "$log")"; FAILS=$((FAILS+1)); fi
}
expect_re() { # $1 = log, $2 = extended regex for a whole line
  grep -qxE -- "$2" "$1" || { echo "run-qemu-devices: no line matching '$2' in $(basename "$1")"; FAILS=$((FAILS+1)); }
}
show() { # $1 = name
  echo "---- $1"
  cat "$W/$1.log"
  [ -s "$W/$1.err" ] && { echo "---- $1 stderr"; cat "$W/$1.err"; }
}
wait_line() { # $1 = file, $2 = fixed string, $3 = tenths of a second
  for ((i = 0; i < $3; i++)); do grep -qF -- "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  return 1
}
wait_pid() { # $1 = pid, $2 = tenths of a second; kill on timeout
  for ((i = 0; i < $2; i++)); do kill -0 "$1" 2>/dev/null || { wait "$1"; return $?; }; sleep 0.1; done
  kill "$1" 2>/dev/null; wait "$1"; return 124
}

# ---- 1. rng + balloon (target 40 MiB of 64 -> num_pages 6144, the guest caps at 16 MiB)
if [[ " $ONLY " == *" rng-balloon "* ]]; then
  "$QEMU" "${QARGS[@]}" -S -monitor "unix:$W/mon.sock,server,nowait" \
    -append "tg.boottimer=0 tg.tests=serial,rng,balloon tg.balloon.wait=2000 tg.balloon.strict=0" \
    -device virtio-rng-device -device virtio-balloon-device \
    -serial stdio </dev/null >"$W/rng-balloon.log" 2>"$W/rng-balloon.err" &
  QPID=$!
  PIDS+=("$QPID")
  for ((i = 0; i < 50; i++)); do [ -S "$W/mon.sock" ] && break; sleep 0.1; done
  python3 - "$W/mon.sock" <<'EOF' >>"$W/rng-balloon.err" 2>&1
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
time.sleep(0.2)
for cmd in (b"balloon 40\n", b"cont\n"):
    s.sendall(cmd)
    time.sleep(0.3)
EOF
  wait_pid "$QPID" 600 || { echo "run-qemu-devices: qemu rng-balloon failed or timed out"; FAILS=$((FAILS+1)); }
  show rng-balloon
  expect "$W/rng-balloon.log" "FLINT-TESTGUEST start" "PASS serial" "PASS rng" "PASS balloon-stats-posted" \
    "PASS balloon-inflate" "PASS balloon-deflate" "FLINT-TESTGUEST done pass=6 fail=0"
  expect_re "$W/rng-balloon.log" "balloon dev=0x[0-9a-f]+ features=0x[0-9a-f]+ num_pages=6144 pages=4096 pool=0x[0-9a-f]+ stats=1"
  # QEMU discards inflated pages too (madvise), so this one is expected here as well
  expect "$W/rng-balloon.log" "PASS balloon-discarded"
fi

# ---- 2./3. net in a network namespace
net_setup() {
  ip netns add "$NS" || return 1
  ip netns exec "$NS" ip link set lo up &&
  ip netns exec "$NS" ip tuntap add dev tgtap0 mode tap &&
  ip netns exec "$NS" ip addr add 172.16.0.1/24 dev tgtap0 &&
  ip netns exec "$NS" ip addr add 169.254.169.254/32 dev tgtap0 &&
  ip netns exec "$NS" ip link set tgtap0 up
}

# $1 = name, $2 = mmds mode (v1|v2), $3 = guest cmdline extras, $4 = 1 to ping
net_run() {
  local name=$1 mode=$2 extra=$3 doping=$4
  rm -f "$W/ready-$name"
  ip netns exec "$NS" python3 "$HERE/mmds-mock.py" 169.254.169.254 "$mode" "$W/ready-$name" \
    >"$W/mmds-$name.log" 2>&1 &
  local mpid=$!
  PIDS+=("$mpid")
  wait_line "$W/ready-$name" ready 50 || { echo "run-qemu-devices: mmds-mock did not start"; cat "$W/mmds-$name.log"; FAILS=$((FAILS+1)); }
  ip netns exec "$NS" "$QEMU" "${QARGS[@]}" \
    -append "tg.boottimer=0 tg.tests=net $extra" \
    -netdev tap,id=n0,ifname=tgtap0,script=no,downscript=no \
    -device virtio-net-device,netdev=n0,mac=06:00:ac:10:00:02 \
    -serial stdio </dev/null >"$W/$name.log" 2>"$W/$name.err" &
  local qpid=$!
  PIDS+=("$qpid")
  if [ "$doping" = 1 ]; then
    if wait_line "$W/$name.log" "net serving ping" 300; then
      ip netns exec "$NS" busybox ping -c 3 -W 3 172.16.0.2 >"$W/ping-$name.log" 2>&1 ||
        { echo "run-qemu-devices: ping failed"; FAILS=$((FAILS+1)); }
      echo "---- ping"; cat "$W/ping-$name.log"
    else
      echo "run-qemu-devices: guest never started serving ping"; FAILS=$((FAILS+1))
    fi
  fi
  wait_pid "$qpid" 900 || { echo "run-qemu-devices: qemu $name failed or timed out"; FAILS=$((FAILS+1)); }
  kill "$mpid" 2>/dev/null; wait "$mpid" 2>/dev/null
  show "$name"
  echo "---- mmds-mock ($name)"; cat "$W/mmds-$name.log"
}

if [[ " $ONLY " == *" net "* || " $ONLY " == *" mmds-v2 "* ]]; then
  command -v busybox >/dev/null || { echo "run-qemu-devices: busybox (ping) not found" >&2; exit 2; }
  [ -c /dev/net/tun ] || { echo "run-qemu-devices: /dev/net/tun missing" >&2; exit 2; }
  net_setup || { echo "run-qemu-devices: cannot create network namespace $NS with a tap (needs root)" >&2; exit 2; }
  TAPMAC=$(ip netns exec "$NS" cat /sys/class/net/tgtap0/address)

  if [[ " $ONLY " == *" net "* ]]; then
    net_run net v1 "tg.net.pingwait=30000 tg.net.pingcount=3 tg.mmds=1" 1
    expect "$W/net.log" "FLINT-TESTGUEST start" "net arp-reply $TAPMAC" "PASS net-arp" \
      "net serving ping" "PASS net-ping-served 3" "mmds arp-reply $TAPMAC" "mmds 200 ami-id" \
      "PASS mmds-v1" "FLINT-TESTGUEST done pass=3 fail=0"
    expect_re "$W/net.log" "net dev=0x[0-9a-f]+ features=0x[0-9a-f]+ mac=06:00:ac:10:00:02 ip=172.16.0.2 qsz=16/16"
    grep -q "3 packets received" "$W/ping-net.log" 2>/dev/null || { echo "run-qemu-devices: ping got no 3 replies"; FAILS=$((FAILS+1)); }
  fi
  if [[ " $ONLY " == *" mmds-v2 "* ]]; then
    net_run mmds-v2 v2 "tg.mmds=1 tg.mmds.v2=1" 0
    expect "$W/mmds-v2.log" "PASS net-arp" "mmds token 43 bytes" "mmds 200 ami-id" "PASS mmds-v2" \
      "mmds 401 Unauthorized" "PASS mmds-v2-401" "FLINT-TESTGUEST done pass=3 fail=0"
  fi
fi

if [ $FAILS -eq 0 ]; then echo "run-qemu-devices: OK"; exit 0; fi
echo "run-qemu-devices: $FAILS problem(s)"; exit 1
