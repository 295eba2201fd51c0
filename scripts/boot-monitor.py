#!/usr/bin/env python3
"""Passes a microVM's console through unchanged (byte by byte, prompts without a newline included), keeps a copy,
notes when each boot milestone appeared, and at the end says in plain words how far the boot got and how long it took.

Used by scripts/run-default-vm.sh:  flint ... | boot-monitor.py HOST_KIND LOG_FILE [START_EPOCH_SECONDS]
HOST_KIND is "kvm_pvm" (software KVM: guest user space cannot run), "hardware" (VMX/SVM) or "none" (no /dev/kvm).
"""
import os
import re
import signal
import sys
import time

# (key, what the console shows, what it means), in boot order.
MILESTONES = [
    ("kernel", "Linux version", "the guest kernel started"),
    ("rootfs", "VFS: Mounted root", "the kernel mounted the rootfs from virtio-blk (/dev/vda)"),
    ("init", "Run /sbin/init as init process", "the kernel finished booting and started /sbin/init"),
    ("userspace", "FLINT_GUEST_INIT_OK", "the rootfs init ran in guest user space"),
    ("boottimer", "Guest-boot-time =", "the boot timer device reported the guest's boot time"),
]
FAILURES = [
    ("kvm_error", "KVM internal error"),
    ("panic", "Kernel panic - not syncing"),
    ("segfault", "segfault at"),
]


def main():
    kind, log_path = sys.argv[1], sys.argv[2]
    # Ctrl-C goes to the whole foreground group: flint ends, this keeps reading so nothing it printed is lost.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Times count from flint's start (the script passes it: this process may start later on a busy host).
    start = time.monotonic() - (time.time() - float(sys.argv[3]) if len(sys.argv) > 3 else 0.0)
    seen = {}
    tail = b""
    with open(log_path, "wb") as log:
        while True:
            chunk = os.read(0, 65536)
            if not chunk:
                break
            os.write(1, chunk)
            log.write(chunk)
            # Look for milestones across chunk boundaries: keep the unfinished last line.
            text = tail + chunk
            lines = text.split(b"\n")
            tail = lines.pop()
            for line in lines:
                note(line.decode("utf-8", "replace"), seen, time.monotonic() - start)
        if tail:
            note(tail.decode("utf-8", "replace"), seen, time.monotonic() - start)
    print(summary(kind, seen, time.monotonic() - start, log_path), flush=True)


def note(line, seen, t):
    for key, marker, *_ in MILESTONES + FAILURES:
        if key not in seen and marker in line:
            seen[key] = (t, line.strip())


def summary(kind, seen, elapsed, log_path):
    out = ["", "==== run-default-vm: how far the boot got ===="]
    reached = [m for m in MILESTONES if m[0] in seen and m[0] != "boottimer"]
    if reached:
        key, _, meaning = reached[-1]
        out.append(f"Reached: {meaning} ({seen[key][0]:.1f} s after flint started; the run ended after {elapsed:.1f} s).")
    else:
        out.append(f"Reached: nothing from the guest kernel (the run ended after {elapsed:.1f} s).")
    if "boottimer" in seen:
        m = re.search(r"Guest-boot-time = +(\d+) us", seen["boottimer"][1])
        if m:
            out.append(f"Boot timer: {int(m.group(1)) / 1000:.1f} ms from the start of the VM build to the rootfs init's signal.")
    if "kvm_error" in seen:
        out.append("KVM stopped the guest with an internal error: the guest ran an instruction this host's KVM cannot run"
                   " (see docs/troubleshooting.md).")
    if kind == "none":
        out.append("No VM could run: this host has no /dev/kvm (docs/troubleshooting.md says how to get one).")
    elif kind == "kvm_pvm":
        if "init" in seen and "userspace" not in seen:
            out.append("That is the expected end on this host: its /dev/kvm is the software kvm_pvm module, and guest user"
                       " space cannot run on it, so init crashed")
            out.append("and the kernel panicked (\"Attempted to kill init!\"); with panic=1 the guest rebooted and flint"
                       " exited. The kernel, its devices and the rootfs all worked.")
        out.append("On a host with VMX or SVM (hardware KVM) the same command goes on: the rootfs init prints"
                   " FLINT_GUEST_INIT_OK, the boot timer logs")
        out.append("\"Guest-boot-time = ...\" (about 125 ms or less is Firecracker's bar), and the guest reboots cleanly.")
    elif "userspace" in seen:
        out.append("The guest booted to user space; its init then rebooted the VM, so flint exited.")
    elif "init" not in seen:
        out.append("The boot did not reach init: the console above (also in the log file) shows where it stopped.")
    out.append(f"Console log: {log_path}")
    return "\n".join(out)


if __name__ == "__main__":
    main()
