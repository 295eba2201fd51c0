#!/usr/bin/env python3
"""Writes src/Flint.Seccomp/default-filters.json: the built-in per-thread allow-lists.

Derived from `strace -f` of the test helper (Helper/Program.cs `work N none`, summarised by syscalls-by-role.py) under
CoreCLR and NativeAOT: what the .NET runtime does on any managed thread (GC, suspension signals, waits, thread exit),
plus what each Flint thread kind does itself. Run from the repo root: python3 tests/Flint.Seccomp.Tests/tools/gen-default-filters.py
"""
import json, os

def io(d, nr, size): return (d << 30) | (size << 16) | (0xAE << 8) | nr
N, W, R, RW = 0, 1, 2, 3

def a(index, val, op="eq", type="dword", comment=None):
    c = {"index": index, "type": type, "op": op, "val": val}
    if comment: c["comment"] = comment
    return c

def rule(name, comment=None, args=None):
    r = {"syscall": name}
    if comment: r["comment"] = comment
    if args: r["args"] = args
    return r

def ioctl(val, comment): return rule("ioctl", args=[a(1, val, comment=comment)])

# Every managed thread: the runtime's own syscalls. Hot ones first (the filter tests syscalls in order).
RUNTIME = [
    rule("futex", "Monitor, ManualResetEventSlim, GC suspension, thread joins"),
    rule("read"), rule("write", "eventfds, logging, stdout/stderr, the SIGSYS handler"),
    rule("sched_yield", "spin waits"),
    rule("membarrier", "FlushProcessWriteBuffers during GC suspension"),
    rule("madvise", "GC commit/decommit", [a(2, 4, comment="MADV_DONTNEED")]),
    rule("madvise", None, [a(2, 8, comment="MADV_FREE")]),
    rule("madvise", None, [a(2, 16, comment="MADV_DONTDUMP")]),
    rule("madvise", None, [a(2, 17, comment="MADV_DODUMP")]),
    rule("mprotect", "GC region commit, guard pages (and JIT W^X under CoreCLR)"),
    rule("mmap", "GC reservations, W^X double mapping"),
    rule("munmap"),
    rule("brk", "glibc malloc growing the main arena (native allocations on the main thread)"),
    rule("rt_sigreturn", "return from the runtime's activation (GC suspension) signal and the vCPU kick"),
    rule("rt_sigprocmask", "runtime signal handling, abort"),
    rule("tgkill", "runtime activation signal (GC suspension/hijack)", [a(2, 34, comment="SIGRTMIN")]),
    rule("tgkill", "vCPU kick", [a(2, 40, comment="SIGRTMIN+6 (Signals.VcpuKick)")]),
    rule("tgkill", "abort()", [a(2, 6, comment="SIGABRT")]),
    rule("getpid"), rule("gettid"),
    rule("clock_gettime", "usually vDSO"), rule("clock_nanosleep", "Thread.Sleep"), rule("nanosleep"),
    rule("restart_syscall"),
    # The GC reads the memory load (/proc/meminfo, limits) whenever it runs, on whichever thread triggered it.
    rule("openat", "GC memory load: /proc/meminfo, cgroup files", [a(2, 0, comment="O_RDONLY")]),
    rule("openat", None, [a(2, 0x80000, comment="O_RDONLY|O_CLOEXEC")]),
    rule("close"), rule("newfstatat"), rule("fstat"), rule("lseek"),
    rule("prlimit64", "GC: RLIMIT_AS", [a(2, 0, type="qword", comment="get only (new_limit == NULL)")]),
    rule("sysinfo", "GC memory load"),
    rule("sched_getaffinity"),
    rule("getrandom"),
    rule("pwrite64", "logger/metrics FileStream writes"),
    rule("sigaltstack", "thread exit"),
    rule("exit", "thread exit"), rule("exit_group"),
]

# CoreCLR (JIT) only: first use of an assembly on a thread maps it. Harmless under NativeAOT; kept so the tests,
# which run the helper under CoreCLR, exercise the same filters.
CORECLR = [
    rule("pread64"), rule("readlink"), rule("stat"),
    rule("fcntl", "F_DUPFD_CLOEXEC", [a(1, 1030)]),
]

FCNTL = [
    rule("fcntl", "F_GETFD", [a(1, 1)]), rule("fcntl", "F_SETFD", [a(1, 2)]),
    rule("fcntl", "F_GETFL", [a(1, 3)]), rule("fcntl", "F_SETFL (Socket.Blocking = false)", [a(1, 4)]),
]

VCPU = [
    ioctl(io(N, 0x80, 0), "KVM_RUN"),
    ioctl(io(R, 0x81, 144), "KVM_GET_REGS"), ioctl(io(W, 0x82, 144), "KVM_SET_REGS"),
    ioctl(io(R, 0x83, 312), "KVM_GET_SREGS"), ioctl(io(W, 0x84, 312), "KVM_SET_SREGS"),
    ioctl(io(RW, 0x88, 8), "KVM_GET_MSRS"), ioctl(io(W, 0x89, 8), "KVM_SET_MSRS"),
    ioctl(io(R, 0x8c, 416), "KVM_GET_FPU"), ioctl(io(W, 0x8d, 416), "KVM_SET_FPU"),
    ioctl(io(R, 0x8e, 1024), "KVM_GET_LAPIC"), ioctl(io(W, 0x8f, 1024), "KVM_SET_LAPIC"),
    ioctl(io(W, 0x90, 8), "KVM_SET_CPUID2"), ioctl(io(RW, 0x91, 8), "KVM_GET_CPUID2"),
    ioctl(io(R, 0x98, 4), "KVM_GET_MP_STATE"), ioctl(io(W, 0x99, 4), "KVM_SET_MP_STATE"),
    ioctl(io(N, 0xa3, 0), "KVM_GET_TSC_KHZ"), ioctl(io(N, 0xad, 0), "KVM_KVMCLOCK_CTRL"),
    ioctl(io(W, 0x61, 8), "KVM_IRQ_LINE (legacy devices emulated on the vCPU thread)"),
    # Virtio register writes run on the vCPU thread, and DRIVER_OK activates the device there:
    ioctl(0x400454d0, "TUNSETOFFLOAD (virtio-net activation sets the tap's offloads)"),
    rule("timerfd_settime", "virtio-balloon activation/reset arms or disarms its stats timer", [a(1, 0)]),
]

API = [
    rule("epoll_wait"), rule("epoll_pwait"), rule("epoll_ctl"),
    rule("accept4", "API connections", [a(3, 0x80000, comment="SOCK_CLOEXEC")]),
    rule("recvfrom", "Socket.Receive"), rule("sendto", "Socket.Send"),
    rule("recvmsg"), rule("sendmsg"),
    rule("shutdown"),
    rule("unlink", ".NET unlinks a bound Unix socket's path when the listener is disposed"), rule("unlinkat"),
]

VMM = [
    rule("epoll_wait"), rule("epoll_pwait"), rule("epoll_ctl"),
    rule("pread64", "virtio-blk"), rule("pwrite64"), rule("preadv"), rule("pwritev"),
    rule("fdatasync", "virtio-blk FLUSH"), rule("fsync"),
    rule("readv", "virtio-net tap"), rule("writev", "virtio-net tap"),
    rule("timerfd_settime", None, [a(1, 0)]),
    rule("timerfd_create"), rule("eventfd2"), rule("epoll_create1"),
    rule("openat", "logger/metrics files configured over the API, snapshot files"),
    rule("flock", "FileStream open"), rule("fstatfs", "FileStream open"),
    rule("ftruncate", "snapshot files"),
    rule("unlink", "API socket removal at exit, CoreCLR diagnostics socket"), rule("unlinkat"),
    rule("dup", "FileStream handles"),
    ioctl(0x5401, "TCGETS (stdin serial console)"), ioctl(0x5402, "TCSETS"), ioctl(0x5413, "TIOCGWINSZ"),
    ioctl(0x5421, "FIONBIO"),
    ioctl(io(W, 0x61, 8), "KVM_IRQ_LINE"), ioctl(io(W, 0x42, 16), "KVM_GET_DIRTY_LOG"),
    rule("accept4", "vsock Unix sockets (VsockNative.Accept)", [a(3, 0x80800, comment="SOCK_NONBLOCK|SOCK_CLOEXEC")]),
    rule("recvfrom"), rule("sendto"), rule("connect", "vsock"),
    rule("sendmsg", "vsock: scatter-gather send to the host socket (VsockNative)"), rule("shutdown", "vsock: half-close on a guest SHUTDOWN"),
    rule("socket", "vsock UDS (VsockNative.Listen/Connect)", [a(0, 1, comment="AF_UNIX"), a(1, 0x80801, comment="SOCK_STREAM|SOCK_NONBLOCK|SOCK_CLOEXEC"), a(2, 0)]),
]

def filt(extra):
    rules = extra + RUNTIME + CORECLR + FCNTL
    return {"default_action": "trap", "filter_action": "allow", "filter": rules}

doc = {"vmm": filt(VMM), "api": filt(API), "vcpu": filt(VCPU)}
out = os.path.join(os.path.dirname(__file__), "../../../src/Flint.Seccomp/default-filters.json")
with open(out, "w") as f:
    json.dump(doc, f, indent=2)
    f.write("\n")
for k, v in doc.items():
    print(k, len({r["syscall"] for r in v["filter"]}), "syscalls")
