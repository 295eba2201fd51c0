#!/usr/bin/env bash
# README command 1: set up, then boot the default microVM (the guest kernel + busybox rootfs on virtio-blk)
# with its console on this terminal. The VM ends when the guest reboots; Ctrl-C ends it at any time.
# Before the boot it says what this host can run; after it, how far the boot got and how long it took.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
G=$PWD/artifacts/guest
mkdir -p artifacts/run
cp --sparse=always "$G/rootfs.ext4" artifacts/run/rootfs.ext4
# Firecracker's getting-started cmdline, without its PCI switch: our guest kernel is built without PCI (CONFIG_PCI unset in
# guest/kernel/config), so the option did nothing and the kernel listed it as an unknown parameter.
cat > artifacts/run/vm_config.json <<JSON
{
  "boot-source": {
    "kernel_image_path": "$G/vmlinux",
    "boot_args": "console=ttyS0 reboot=k panic=1"
  },
  "drives": [
    { "drive_id": "rootfs", "path_on_host": "$PWD/artifacts/run/rootfs.ext4", "is_root_device": true, "is_read_only": false }
  ],
  "machine-config": { "vcpu_count": ${VCPUS:-1}, "mem_size_mib": ${MEM_MIB:-128} }
}
JSON

# The same rule flint applies (src/Flint.Kvm/KvmHostKind.cs): KVM without VMX/SVM in the CPU is the software kvm_pvm.
kind=hardware
if [ -d /sys/module/kvm_pvm ] || ! grep -qw -e vmx -e svm /proc/cpuinfo; then kind=kvm_pvm; fi
if [ ! -e /dev/kvm ]; then
  kind=none
  echo "run: /dev/kvm does not exist on this host, so no VM can start here (see docs/troubleshooting.md)."
elif [ $kind = kvm_pvm ]; then
  cat <<'TXT'
run: this host's /dev/kvm is the software kvm_pvm module (the CPU has no VMX/SVM): KVM emulates every guest
     instruction, and guest user space cannot run. flint applies its KvmPvm CPU template (logged below), the kernel
     boots (about half a minute), and the expected end is the kernel's line "Run /sbin/init as init process".
     What follows it is expected too: init crashes, the kernel panics ("Attempted to kill init!"), the guest
     reboots (panic=1) and flint exits. On a VMX/SVM host init runs and prints FLINT_GUEST_INIT_OK instead.
TXT
else
  echo "run: hardware KVM (VMX/SVM): the guest boots to its rootfs init, which prints FLINT_GUEST_INIT_OK, signals the boot timer and reboots."
fi
echo "run: artifacts/bin/flint --no-api --boot-timer --config-file artifacts/run/vm_config.json"
set +e
start=$(date +%s.%N)
artifacts/bin/flint --no-api --boot-timer --config-file artifacts/run/vm_config.json \
  | python3 -u scripts/boot-monitor.py "$kind" artifacts/run/console.log "$start"
rc=${PIPESTATUS[0]}
set -e
echo "flint exit status: $rc$([ "$rc" = 0 ] && echo ' (the guest rebooted or shut down)')"
exit "$rc"
