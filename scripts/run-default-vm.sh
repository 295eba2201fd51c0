#!/usr/bin/env bash
# README command 1: set up, then boot the default microVM (the guest kernel + busybox rootfs on virtio-blk)
# with its console on this terminal. The VM ends when the guest reboots; Ctrl-C ends it at any time.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
G=$PWD/artifacts/guest
mkdir -p artifacts/run
cp --sparse=always "$G/rootfs.ext4" artifacts/run/rootfs.ext4
cat > artifacts/run/vm_config.json <<JSON
{
  "boot-source": {
    "kernel_image_path": "$G/vmlinux",
    "boot_args": "console=ttyS0 reboot=k panic=1 pci=off"
  },
  "drives": [
    { "drive_id": "rootfs", "path_on_host": "$PWD/artifacts/run/rootfs.ext4", "is_root_device": true, "is_read_only": false }
  ],
  "machine-config": { "vcpu_count": ${VCPUS:-1}, "mem_size_mib": ${MEM_MIB:-128} }
}
JSON
echo "run: artifacts/bin/flint --no-api --boot-timer --config-file artifacts/run/vm_config.json"
exec artifacts/bin/flint --no-api --boot-timer --config-file artifacts/run/vm_config.json
