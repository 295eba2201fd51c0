#!/usr/bin/env python3
"""Writes src/Flint.Seccomp/default-filters.json: the built-in per-thread allow-lists and the process baseline.

Derived from `strace -f` of the test helper (Helper/Program.cs `work N none`, summarised by syscalls-by-role.py) under
CoreCLR and NativeAOT, and of the published flint under its filters: what the .NET runtime does on any managed thread
(GC, suspension signals, waits, thread exit), plus what each Flint thread kind does itself. Each role is no looser than
Firecracker's filter for the same thread (resources/seccomp/x86_64-unknown-linux-musl.json): no PROT_EXEC mapping after
start-up, vCPU threads get the KVM GET ioctls (pause, snapshots) but no SET, unlink/sendmsg only where used.
The CoreCLR-only syscalls (JIT: PROT_EXEC, assembly loading) are not here: the test helper, which runs under CoreCLR,
adds them to its own copy (Helper/Program.cs, CoreClrExtras).
Run from the repo root: python3 tests/Flint.Seccomp.Tests/tools/gen-default-filters.py
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
    rule("mprotect", "GC region commit, thread stack guard pages; never executable (no JIT under NativeAOT)",
         [a(2, 0, op={"masked_eq": 4}, comment="PROT_EXEC not set")]),
    rule("mmap", "GC reservations and commits, native allocations; never executable",
         [a(2, 0, op={"masked_eq": 4}, comment="PROT_EXEC not set")]),
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
    rule("pwrite64", "logger/metrics FileStream writes (a log line can come from any thread)"),
    rule("sigaltstack", "thread exit"),
    rule("exit", "thread exit"), rule("exit_group"),
]

FCNTL = [
    rule("fcntl", "F_GETFD", [a(1, 1)]), rule("fcntl", "F_SETFD", [a(1, 2)]),
    rule("fcntl", "F_GETFL", [a(1, 3)]), rule("fcntl", "F_SETFL (Socket.Blocking = false)", [a(1, 4)]),
]

VCPU = [
    ioctl(io(N, 0x80, 0), "KVM_RUN"),
    # State is set on the VMM thread before the vCPU threads start (VmBuilder); here only reads: the exit dump, and the
    # pause/snapshot paths that save a parked vCPU's state (Firecracker's vCPU filter allows the same GETs).
    ioctl(io(R, 0x81, 144), "KVM_GET_REGS"), ioctl(io(R, 0x83, 312), "KVM_GET_SREGS"),
    ioctl(io(RW, 0x88, 8), "KVM_GET_MSRS"), ioctl(io(R, 0x8c, 416), "KVM_GET_FPU"),
    ioctl(io(R, 0x8e, 1024), "KVM_GET_LAPIC"), ioctl(io(RW, 0x91, 8), "KVM_GET_CPUID2"),
    ioctl(io(R, 0x98, 4), "KVM_GET_MP_STATE"), ioctl(io(R, 0x9f, 64), "KVM_GET_VCPU_EVENTS"),
    ioctl(io(R, 0xa1, 128), "KVM_GET_DEBUGREGS"), ioctl(io(R, 0xa4, 4096), "KVM_GET_XSAVE"),
    ioctl(io(R, 0xcf, 4096), "KVM_GET_XSAVE2"), ioctl(io(R, 0xa6, 392), "KVM_GET_XCRS"),
    ioctl(io(N, 0xa3, 0), "KVM_GET_TSC_KHZ"),
    ioctl(io(N, 0xad, 0), "KVM_KVMCLOCK_CTRL (on pause: tells the guest its clock stopped, no soft lockups)"),
    ioctl(io(W, 0x61, 8), "KVM_IRQ_LINE (legacy devices emulated on the vCPU thread)"),
    # Virtio register writes run on the vCPU thread, and DRIVER_OK activates the device there:
    ioctl(0x400454d0, "TUNSETOFFLOAD (virtio-net activation sets the tap's offloads)"),
    rule("timerfd_settime", "virtio-balloon activation/reset arms or disarms its stats timer", [a(1, 0)]),
    # A guest's device reset (a register write, handled here) waits for the Async block engine's in-flight requests
    # before the queue goes away (as Firecracker's vCPU filter allows io_uring_enter for the same drain). No setup,
    # no register: the ring exists already.
    rule("io_uring_enter", "virtio-blk Async: reset drains in-flight requests"),
]

API = [
    rule("epoll_wait"), rule("epoll_pwait"), rule("epoll_ctl"),
    rule("accept4", "API connections", [a(3, 0x80000, comment="SOCK_CLOEXEC")]),
    rule("recvfrom", "Socket.Receive (glibc recv)"), rule("sendto", "Socket.Send (glibc send)"),
    rule("shutdown", "closing a connection"),
    # No unlink: the listener is disposed and its file removed on the main thread. No sendmsg/recvmsg: single-buffer
    # sends and receives only.
]

VMM = [
    rule("epoll_wait"), rule("epoll_pwait"), rule("epoll_ctl"),
    rule("pread64", "virtio-blk"), rule("pwrite64"), rule("preadv"), rule("pwritev"),
    rule("fdatasync", "virtio-blk FLUSH"), rule("fsync"),
    # virtio-blk io_engine Async (Firecracker's VMM filter allows the same three): setup and register when a drive's
    # ring is made (PATCH /drives makes a new one for the new file), enter to submit and reap. The rings are mapped
    # with mmap MAP_SHARED, non-executable, which the runtime's mmap rule below already allows.
    rule("io_uring_enter", "virtio-blk Async: submit, reap, drain"),
    rule("io_uring_setup", "virtio-blk Async: a drive's ring"), rule("io_uring_register", "virtio-blk Async: eventfd, file, restrictions"),
    rule("readv", "virtio-net tap"), rule("writev", "virtio-net tap"),
    rule("timerfd_settime", None, [a(1, 0)]),
    rule("timerfd_create"), rule("eventfd2"), rule("epoll_create1"),
    rule("openat", "logger/metrics files configured over the API, PATCH /drives backing files, snapshot files"),
    rule("getcwd", "relative paths in API bodies (normal in a jail): Path.GetFullPath, FileStream"),
    rule("flock", "FileStream open"), rule("fstatfs", "FileStream open"),
    rule("ftruncate", "snapshot files"),
    rule("unlink", "API socket file removal at exit (File.Delete)"),
    rule("dup", "FileStream handles"),
    ioctl(0x5401, "TCGETS (stdin serial console)"), ioctl(0x5402, "TCSETS"), ioctl(0x5413, "TIOCGWINSZ"),
    ioctl(0x5421, "FIONBIO"),
    ioctl(io(W, 0x61, 8), "KVM_IRQ_LINE"), ioctl(io(W, 0x42, 16), "KVM_GET_DIRTY_LOG"),
    # PUT /snapshot/create saves the in-kernel irqchip, PIT and kvmclock on this thread while every vCPU is parked
    # (each vCPU saves its own registers on its thread, under the vcpu filter). Reads only: every SET of a restore
    # happens before InstanceStart-equivalent, on this thread, before this filter is installed.
    ioctl(io(RW, 0x62, 520), "KVM_GET_IRQCHIP (snapshot create)"), ioctl(io(R, 0x9f, 112), "KVM_GET_PIT2 (snapshot create)"),
    ioctl(io(R, 0x7c, 48), "KVM_GET_CLOCK (snapshot create)"),
    rule("accept4", "vsock Unix sockets (VsockNative.Accept)", [a(3, 0x80800, comment="SOCK_NONBLOCK|SOCK_CLOEXEC")]),
    rule("recvfrom"), rule("sendto"), rule("connect", "vsock"),
    rule("sendmsg", "vsock: scatter-gather send to the host socket (VsockNative)"), rule("shutdown", "vsock: half-close on a guest SHUTDOWN"),
    rule("socket", "vsock UDS (VsockNative.Listen/Connect)", [a(0, 1, comment="AF_UNIX"), a(1, 0x80801, comment="SOCK_STREAM|SOCK_NONBLOCK|SOCK_CLOEXEC"), a(2, 0)]),
]

# The process baseline: installed on every thread at once (SECCOMP_FILTER_FLAG_TSYNC) right after start-up, before any
# role filter, which stack on it. It is what holds the runtime's own threads (the finalizer) and the main thread before
# InstanceStart, which still builds the VM (KVM ioctls, guest memory, vCPU threads): a deny-list of what Flint never
# does on any thread, so a hijacked thread cannot start a program, attach to or read another process, make executable
# memory, leave its namespaces or reach the kernel's module, BPF and keyring surfaces. Matching = trap (148).
def deny(name, comment=None, args=None): return rule(name, comment, args)
X = {"masked_eq": 4}
PROCESS = [
    # First, as the compiler tests syscalls in rule order: ioctl is the hot call (KVM_RUN at every vCPU exit) and, having
    # arguments checked in the role filters too, it always runs this filter's BPF (the kernel's allow cache skips the
    # calls a filter allows whatever their arguments). Two compares, then allowed.
    deny("ioctl", "TIOCSTI: type into the controlling terminal (a shell outside the jail)", [a(1, 0x5412)]),
    deny("ioctl", "TIOCLINUX: the same on a virtual console", [a(1, 0x541c)]),
    deny("execve", "start another program"), deny("execveat"),
    deny("fork", "processes: threads only (clone with CLONE_THREAD)"), deny("vfork"),
    deny("clone", None, [a(0, 0, op={"masked_eq": 0x10000}, type="qword", comment="CLONE_THREAD not set")]),
    # clone3's flags are in memory, out of BPF's reach. Allowed (glibc creates threads with it): a child process could
    # not exec, ptrace or map code either, as it inherits this filter.
    deny("ptrace", "other processes"), deny("process_vm_readv"), deny("process_vm_writev"), deny("process_madvise"),
    deny("pidfd_open"), deny("pidfd_getfd"), deny("pidfd_send_signal"), deny("kcmp"),
    deny("migrate_pages"), deny("move_pages"),
    deny("mmap", "no new code after start-up (the native signal handlers are written before this filter)", [a(2, 4, op=X, comment="PROT_EXEC")]),
    deny("mprotect", None, [a(2, 4, op=X, comment="PROT_EXEC")]),
    deny("pkey_mprotect", None, [a(2, 4, op=X, comment="PROT_EXEC")]),
    deny("remap_file_pages"), deny("modify_ldt"), deny("iopl"), deny("ioperm"),
    deny("socket", "only Unix sockets (API, vsock); no network or netlink socket", [a(0, 1, op="ne", comment="AF_UNIX")]),
    deny("init_module", "kernel surfaces Flint never uses"), deny("finit_module"), deny("delete_module"),
    deny("kexec_load"), deny("kexec_file_load"), deny("reboot"), deny("swapon"), deny("swapoff"), deny("acct"),
    deny("bpf"), deny("perf_event_open"), deny("userfaultfd"), deny("keyctl"), deny("add_key"), deny("request_key"),
    # io_uring is not here: the Async block engine needs it on the VMM thread (and io_uring_enter on vCPU threads),
    # and a baseline deny would win over those roles' allows. The role filters keep it off every other Flint thread
    # (API: default trap); what is left are the runtime's own threads (finalizer), which never call it.
    deny("personality"), deny("syslog"),
    deny("mount", "namespaces and the file system tree (the jailer set them up)"), deny("umount2"), deny("pivot_root"),
    deny("chroot"), deny("setns"), deny("unshare"), deny("fsopen"), deny("fsmount"), deny("fsconfig"),
    deny("move_mount"), deny("open_tree"), deny("fspick"), deny("mount_setattr"),
    deny("name_to_handle_at"), deny("open_by_handle_at"), deny("quotactl"), deny("uselib"), deny("vhangup"),
    deny("setuid", "credentials (the jailer dropped them)"), deny("setgid"), deny("setreuid"), deny("setregid"),
    deny("setresuid"), deny("setresgid"), deny("setfsuid"), deny("setfsgid"), deny("setgroups"), deny("capset"),
    deny("settimeofday", "host clocks and names"), deny("clock_settime"), deny("clock_adjtime"), deny("adjtimex"),
    deny("sethostname"), deny("setdomainname"),
]

def filt(extra):
    rules = extra + RUNTIME + FCNTL
    return {"default_action": "trap", "filter_action": "allow", "filter": rules}

doc = {"vmm": filt(VMM), "api": filt(API), "vcpu": filt(VCPU),
       "process": {"default_action": "allow", "filter_action": "trap", "filter": PROCESS}}
out = os.path.join(os.path.dirname(__file__), "../../../src/Flint.Seccomp/default-filters.json")
with open(out, "w") as f:
    json.dump(doc, f, indent=2)
    f.write("\n")
for k, v in doc.items():
    print(k, len({r["syscall"] for r in v["filter"]}), "syscalls")
