#!/usr/bin/env bash
# The pre-boot requests a Firecracker client sends, each on a new connection as curl makes them: what
# bench/memory-breakdown.sh measures memory after, and what bench/code-order/profile.sh records the code of.
#
#   bash bench/api-workload.sh SOCKET ROUNDS [SCRATCH_DIR]
#
# One round is 12 requests: PUT machine-config, boot-source, drives (a scratch file), network-interfaces (a TAP
# named fm<pid>, created while flint holds it and gone when it exits; skipped without /dev/net/tun), mmds;
# PATCH machine-config, mmds; GET /, /machine-config, /vm/config, /mmds, /version. Answers are not checked
# (a 400 is a request kind as well).
set -euo pipefail
sock=$1 rounds=$2 scratch=${3:-$(mktemp -d)}
command -v curl >/dev/null || { echo "api-workload: needs curl" >&2; exit 1; }
api() { curl -s --max-time 10 --unix-socket "$sock" -X "$1" "http://localhost$2" ${3:+-H 'Content-Type: application/json' -d "$3"} >/dev/null || true; }
: >"$scratch/rootfs.img"
truncate -s 1M "$scratch/rootfs.img"
tap=fm$$
for i in $(seq "$rounds"); do
  api PUT /machine-config "{\"vcpu_count\": $((i % 2 + 1)), \"mem_size_mib\": 256}"
  api PUT /boot-source '{"kernel_image_path": "/dev/null", "boot_args": "console=ttyS0 reboot=k panic=1"}'
  api PUT /drives/rootfs "{\"drive_id\": \"rootfs\", \"path_on_host\": \"$scratch/rootfs.img\", \"is_root_device\": true, \"is_read_only\": false}"
  if [ -c /dev/net/tun ]; then
    api PUT /network-interfaces/eth0 "{\"iface_id\": \"eth0\", \"guest_mac\": \"06:00:AC:10:00:02\", \"host_dev_name\": \"$tap\"}"
  fi
  api PATCH /machine-config '{"mem_size_mib": 128}'
  api PUT /mmds "{\"latest\": {\"meta-data\": {\"instance-id\": \"i-$i\", \"ami-id\": \"ami-flint\"}}}"
  api PATCH /mmds '{"latest": {"meta-data": {"hostname": "flint-guest"}}}'
  api GET /
  api GET /machine-config
  api GET /vm/config
  api GET /mmds
  api GET /version
done
