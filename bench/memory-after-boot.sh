#!/usr/bin/env bash
# VMM memory outside guest RAM with a booted, idle guest (Firecracker's memory-overhead promise), by class of mapping.
#
#   bash bench/memory-after-boot.sh [BINARY...]     # default: artifacts/bin/flint; needs /dev/kvm (or the nested VM:
#                                                   # tests/nested-kvm/run.sh -- bash bench/memory-after-boot.sh ...)
#
# For each binary: configures 1 vCPU / 128 MiB, the setup.sh guest kernel and a copy of its rootfs over the API, with
# `init=/bin/sh` so the guest reaches user space and then sits idle at a shell (the rootfs's own init reboots at once),
# waits for `Run /bin/sh as init process` on the console plus SETTLE seconds, and prints bench/memory-breakdown.sh
# --pid --guest-mib 128 (guest memory left out, as Firecracker's test_memory_overhead.py does).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -gt 0 ] || set -- artifacts/bin/flint
GUEST=${GUEST:-artifacts/guest}
SETTLE=${SETTLE:-3}
command -v curl >/dev/null || { echo "memory-after-boot: needs curl" >&2; exit 1; }

for bin in "$@"; do
  dir=$(mktemp -d)
  cp "$GUEST/rootfs.ext4" "$dir/rootfs.ext4"
  mkfifo "$dir/in"
  exec 3<>"$dir/in" # the serial console's input: open read-write, so the guest's shell never sees end of file
  "$bin" --api-sock "$dir/api.sock" <&3 >"$dir/console" 2>&1 &
  pid=$!
  for _ in $(seq 500); do [ -S "$dir/api.sock" ] && break; sleep 0.01; done
  api() {
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "$dir/api.sock" -X PUT "http://localhost$1" \
      -H 'Content-Type: application/json' -d "$2")
    [ "$code" = 204 ] || { echo "memory-after-boot: PUT $1 answered $code" >&2; return 1; }
  }
  ok=1
  api /boot-source "{\"kernel_image_path\": \"$PWD/$GUEST/vmlinux\", \"boot_args\": \"console=ttyS0 reboot=k panic=1 init=/bin/sh\"}" &&
    api /drives/rootfs "{\"drive_id\": \"rootfs\", \"path_on_host\": \"$dir/rootfs.ext4\", \"is_root_device\": true, \"is_read_only\": false}" &&
    api /machine-config '{"vcpu_count": 1, "mem_size_mib": 128}' &&
    api /actions '{"action_type": "InstanceStart"}' || ok=0
  start=$SECONDS
  while [ $ok = 1 ] && ! grep -q 'Run /bin/sh as init process' "$dir/console"; do
    if ! kill -0 $pid 2>/dev/null || [ $((SECONDS - start)) -gt 300 ]; then ok=0; break; fi
    sleep 0.2
  done
  if [ $ok = 1 ]; then
    sleep "$SETTLE"
    echo "booted to /bin/sh in about $((SECONDS - start - SETTLE)) s"
    bash bench/memory-breakdown.sh --pid $pid --guest-mib 128
  else
    echo "memory-after-boot: $bin did not reach the guest's shell; its console:" >&2
    tail -20 "$dir/console" >&2
  fi
  kill $pid 2>/dev/null; wait $pid 2>/dev/null || true
  exec 3>&-
  rm -rf "$dir"
done
