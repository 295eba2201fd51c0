namespace Flint.Seccomp.Tests;

public class DefaultFilterTests
{
    private const uint Allow = Bpf.SECCOMP_RET_ALLOW, Trap = Bpf.SECCOMP_RET_TRAP;

    private static int Nr(string name) => SyscallTable.TryGetNumber(name, out int n) ? n : throw new ArgumentException(name);

    [Fact]
    public void All_three_compile_and_are_allow_lists()
    {
        foreach (var kind in ThreadKinds.Roles)
        {
            var spec = DefaultFilters.GetSpec(kind);
            Assert.Equal(SeccompAction.Trap, spec.DefaultAction);
            Assert.Equal(SeccompAction.Allow, spec.FilterAction);
            var prog = DefaultFilters.Get(kind);
            Assert.InRange(prog.Length, 50, Bpf.MaxInstructions);
            // What the runtime needs on every thread, and what the SIGSYS handler needs.
            foreach (var s in new[] { "futex", "rt_sigreturn", "rt_sigprocmask", "sched_yield", "membarrier", "mprotect", "mmap", "munmap", "write", "exit", "exit_group", "restart_syscall", "gettid", "getpid" })
                Assert.Equal(Allow, BpfInterpreter.Run(prog, Nr(s)));
            Assert.Equal(Allow, BpfInterpreter.Run(prog, Nr("tgkill"), [1, 2, 34]));
            Assert.Equal(Trap, BpfInterpreter.Run(prog, Nr("tgkill"), [1, 2, 9]));
            Assert.Equal(Allow, BpfInterpreter.Run(prog, Nr("madvise"), [0, 0, 4]));
            Assert.Equal(Trap, BpfInterpreter.Run(prog, Nr("madvise"), [0, 0, 100]));
            foreach (var s in new[] { "execve", "fork", "vfork", "clone", "clone3", "ptrace", "mount", "setuid", "kill", "init_module", "bpf", "seccomp" })
                Assert.Equal(Trap, BpfInterpreter.Run(prog, Nr(s)));
            Assert.Equal(Bpf.SECCOMP_RET_KILL_PROCESS, BpfInterpreter.Run(prog, Nr("read"), arch: 0x40000003));
            // No new code after start-up (Firecracker's "Ensure PROT_EXEC is not set"), on any role.
            Assert.Equal(Allow, BpfInterpreter.Run(prog, Nr("mmap"), [0, 4096, 3, 0x22]));
            Assert.Equal(Trap, BpfInterpreter.Run(prog, Nr("mmap"), [0, 4096, 5, 0x22]));
            Assert.Equal(Allow, BpfInterpreter.Run(prog, Nr("mprotect"), [0, 4096, 0]));
            Assert.Equal(Trap, BpfInterpreter.Run(prog, Nr("mprotect"), [0, 4096, 4]));
            Assert.Equal(Trap, BpfInterpreter.Run(prog, Nr("mprotect"), [0, 4096, 7]));
            // CoreCLR's JIT-only calls are not in the shipped filters.
            foreach (var s in new[] { "readlink", "stat", "execveat", "unlinkat", "recvmsg", "rt_sigaction" })
                Assert.Equal(Trap, BpfInterpreter.Run(prog, Nr(s)));
        }
    }

    [Fact]
    public void vCPU_may_read_but_not_set_vCPU_state()
    {
        var prog = DefaultFilters.Get(ThreadKind.Vcpu);
        // The pause and snapshot paths read a parked vCPU's state on its own thread; KVMCLOCK_CTRL goes with pause.
        foreach (uint get in new uint[] { 0x8090AE81, 0x8138AE83, 0xC008AE88, 0x81A0AE8C, 0x8400AE8E, 0xC008AE91, 0x8004AE98,
                                           0x8040AE9F, 0x8080AEA1, 0x9000AEA4, 0x9000AECF, 0x8188AEA6, 0xAEA3, 0xAEAD })
            Assert.Equal(Allow, BpfInterpreter.Run(prog, Nr("ioctl"), [10, get]));
        // KVM_SET_REGS, SREGS, MSRS, FPU, LAPIC, CPUID2, MP_STATE: set once on the VMM thread before the vCPUs start.
        foreach (uint set in new uint[] { 0x4090AE82, 0x4138AE84, 0x4008AE89, 0x41A0AE8D, 0x4400AE8F, 0x4008AE90, 0x4004AE99 })
            Assert.Equal(Trap, BpfInterpreter.Run(prog, Nr("ioctl"), [10, set]));
        foreach (var s in new[] { "unlink", "sendmsg", "getcwd" })
            Assert.Equal(Trap, BpfInterpreter.Run(prog, Nr(s)));
    }

    [Fact]
    public void API_has_no_unlink_or_message_calls()
    {
        var prog = DefaultFilters.Get(ThreadKind.Api);
        foreach (var s in new[] { "unlink", "unlinkat", "sendmsg", "recvmsg", "getcwd" })
            Assert.Equal(Trap, BpfInterpreter.Run(prog, Nr(s)));
    }

    [Fact]
    public void VMM_resolves_relative_paths_but_cannot_unlinkat()
    {
        var prog = DefaultFilters.Get(ThreadKind.Vmm);
        Assert.Equal(Allow, BpfInterpreter.Run(prog, Nr("getcwd"))); // PATCH /drives with a relative path_on_host
        Assert.Equal(Allow, BpfInterpreter.Run(prog, Nr("unlink")));  // the API socket file at exit
        Assert.Equal(Trap, BpfInterpreter.Run(prog, Nr("unlinkat")));
    }

    /// <summary>
    /// io_engine Async: the VMM thread sets up, registers and drives a drive's io_uring; a vCPU thread only waits on
    /// it (a guest's device reset drains in-flight requests); the API thread never touches it. Firecracker's filters
    /// split it the same way. The baseline must let them through, or its trap would win over the role's allow.
    /// </summary>
    [Fact]
    public void io_uring_only_where_the_async_block_engine_runs()
    {
        var vmm = DefaultFilters.Get(ThreadKind.Vmm);
        var vcpu = DefaultFilters.Get(ThreadKind.Vcpu);
        var api = DefaultFilters.Get(ThreadKind.Api);
        var process = DefaultFilters.Get(ThreadKind.Process);
        foreach (var s in new[] { "io_uring_setup", "io_uring_enter", "io_uring_register" })
        {
            Assert.Equal(Allow, BpfInterpreter.Run(vmm, Nr(s)));
            Assert.Equal(Allow, BpfInterpreter.Run(process, Nr(s)));
            Assert.Equal(Trap, BpfInterpreter.Run(api, Nr(s)));
        }
        Assert.Equal(Allow, BpfInterpreter.Run(vcpu, Nr("io_uring_enter")));
        Assert.Equal(Trap, BpfInterpreter.Run(vcpu, Nr("io_uring_setup")));
        Assert.Equal(Trap, BpfInterpreter.Run(vcpu, Nr("io_uring_register")));
    }

    [Fact]
    public void Process_baseline_denies_what_no_thread_does_and_allows_the_rest()
    {
        var spec = DefaultFilters.GetSpec(ThreadKind.Process);
        Assert.Equal(SeccompAction.Allow, spec.DefaultAction);
        Assert.Equal(SeccompAction.Trap, spec.FilterAction);
        var prog = DefaultFilters.Get(ThreadKind.Process);
        foreach (var s in new[] { "execve", "execveat", "ptrace", "fork", "vfork", "process_vm_readv", "process_vm_writev",
                                  "pidfd_getfd", "init_module", "bpf", "mount", "setns", "unshare", "setuid", "userfaultfd" })
            Assert.Equal(Trap, BpfInterpreter.Run(prog, Nr(s)));
        Assert.Equal(Trap, BpfInterpreter.Run(prog, Nr("clone"), [0x11]));                     // a process (SIGCHLD)
        Assert.Equal(Allow, BpfInterpreter.Run(prog, Nr("clone"), [0x3d0f00]));                // glibc's pthread_create
        Assert.Equal(Trap, BpfInterpreter.Run(prog, Nr("mmap"), [0, 4096, 5, 0x22]));          // PROT_READ|PROT_EXEC
        Assert.Equal(Allow, BpfInterpreter.Run(prog, Nr("mmap"), [0, 4096, 3, 0x01]));         // guest memory
        Assert.Equal(Trap, BpfInterpreter.Run(prog, Nr("mprotect"), [0, 4096, 4]));
        Assert.Equal(Trap, BpfInterpreter.Run(prog, Nr("socket"), [2, 1, 0]));                 // AF_INET
        Assert.Equal(Trap, BpfInterpreter.Run(prog, Nr("socket"), [16, 3, 0]));                // AF_NETLINK
        Assert.Equal(Allow, BpfInterpreter.Run(prog, Nr("socket"), [1, 0x80801, 0]));          // AF_UNIX
        Assert.Equal(Trap, BpfInterpreter.Run(prog, Nr("ioctl"), [0, 0x5412]));               // TIOCSTI
        Assert.Equal(Allow, BpfInterpreter.Run(prog, Nr("ioctl"), [10, 0xAE80]));              // KVM_RUN
        // What building the VM and stacking the role filters need.
        foreach (var s in new[] { "ioctl", "openat", "clone3", "seccomp", "prctl", "read", "futex", "eventfd2" })
            Assert.Equal(Allow, BpfInterpreter.Run(prog, Nr(s)));
    }

    [Fact]
    public void vCPU_allows_only_vCPU_ioctls()
    {
        var prog = DefaultFilters.Get(ThreadKind.Vcpu);
        Assert.Equal(Allow, BpfInterpreter.Run(prog, Nr("ioctl"), [10, 44672])); // KVM_RUN
        Assert.Equal(Allow, BpfInterpreter.Run(prog, Nr("ioctl"), [10, 0x8090AE81])); // KVM_GET_REGS
        Assert.Equal(Trap, BpfInterpreter.Run(prog, Nr("ioctl"), [10, 0xAE41])); // KVM_CREATE_VCPU
        Assert.Equal(Trap, BpfInterpreter.Run(prog, Nr("socket"), [1, 1, 0]));
        Assert.Equal(Trap, BpfInterpreter.Run(prog, Nr("accept4"), [3, 0, 0, 0x80000]));
        Assert.Equal(Allow, BpfInterpreter.Run(prog, Nr("openat"), [unchecked((ulong)-100), 0, 0]));
        Assert.Equal(Trap, BpfInterpreter.Run(prog, Nr("openat"), [unchecked((ulong)-100), 0, 0x42])); // O_RDWR|O_CREAT
        // Device activation runs on the vCPU thread (the DRIVER_OK register write): virtio-net sets the tap's
        // offloads, virtio-balloon arms its stats timer.
        Assert.Equal(Allow, BpfInterpreter.Run(prog, Nr("ioctl"), [10, 0x400454d0])); // TUNSETOFFLOAD
        Assert.Equal(Allow, BpfInterpreter.Run(prog, Nr("timerfd_settime"), [10, 0, 0, 0]));
        Assert.Equal(Trap, BpfInterpreter.Run(prog, Nr("ioctl"), [10, 0x400454ca])); // TUNSETIFF: never needed there
        // --enable-pci: the guest's MSI-X table and control writes (vCPU MMIO exits) re-route vectors in KVM.
        Assert.Equal(Allow, BpfInterpreter.Run(prog, Nr("ioctl"), [10, 0x4008ae6a])); // KVM_SET_GSI_ROUTING
        Assert.Equal(Trap, BpfInterpreter.Run(prog, Nr("ioctl"), [10, 0x4020ae76]));  // KVM_IRQFD: irqfds are set up before the vCPUs run
    }

    [Fact]
    public void API_allows_unix_socket_serving()
    {
        var prog = DefaultFilters.Get(ThreadKind.Api);
        Assert.Equal(Allow, BpfInterpreter.Run(prog, Nr("accept4"), [3, 0, 0, 0x80000]));
        Assert.Equal(Trap, BpfInterpreter.Run(prog, Nr("accept4"), [3, 0, 0, 0]));
        Assert.Equal(Allow, BpfInterpreter.Run(prog, Nr("recvfrom")));
        Assert.Equal(Allow, BpfInterpreter.Run(prog, Nr("sendto")));
        Assert.Equal(Allow, BpfInterpreter.Run(prog, Nr("epoll_wait")));
        Assert.Equal(Trap, BpfInterpreter.Run(prog, Nr("ioctl"), [10, 44672]));
        Assert.Equal(Trap, BpfInterpreter.Run(prog, Nr("connect")));
    }

    [Fact]
    public void VMM_allows_event_loop_and_block_io()
    {
        var prog = DefaultFilters.Get(ThreadKind.Vmm);
        foreach (var s in new[] { "epoll_wait", "epoll_ctl", "pread64", "pwrite64", "fdatasync", "timerfd_create", "eventfd2", "writev", "readv" })
            Assert.Equal(Allow, BpfInterpreter.Run(prog, Nr(s)));
        Assert.Equal(Allow, BpfInterpreter.Run(prog, Nr("timerfd_settime"), [5, 0]));
        Assert.Equal(Trap, BpfInterpreter.Run(prog, Nr("timerfd_settime"), [5, 1]));
        // vsock's Unix sockets, with the exact type and flags Flint.Sys.UnixSockets uses (SocketType, AcceptFlags): a filter that
        // allowed SOCK_STREAM|SOCK_CLOEXEC only killed the VMM at the guest's first vsock connect on a KVM host.
        Assert.Equal(Allow, BpfInterpreter.Run(prog, Nr("socket"), [1, 0x80801, 0]));
        Assert.Equal(Allow, BpfInterpreter.Run(prog, Nr("accept4"), [3, 0, 0, 0x80800]));
        Assert.Equal(Allow, BpfInterpreter.Run(prog, Nr("sendmsg")));   // UnixSockets.SendV, the scatter-gather send
        Assert.Equal(Allow, BpfInterpreter.Run(prog, Nr("shutdown")));  // half-close on the guest's SHUTDOWN
        Assert.Equal(Trap, BpfInterpreter.Run(prog, Nr("socket"), [2, 0x80801, 0]));
        // The boot timer (vCPU thread) and startup metrics read the process CPU clock, never getrusage.
        Assert.Equal(Allow, BpfInterpreter.Run(DefaultFilters.Get(ThreadKind.Vcpu), Nr("clock_gettime"), [2, 0]));
        Assert.Equal(Trap, BpfInterpreter.Run(prog, Nr("ioctl"), [10, 44672]));
    }

    [Fact]
    public void Config_load_compiles_a_file_and_requires_all_kinds()
    {
        string dir = Directory.CreateTempSubdirectory("flint-seccomp-").FullName;
        try
        {
            string path = Path.Combine(dir, "f.json");
            File.WriteAllText(path, DefaultFilters.Json);
            var cfg = SeccompConfig.Load(path);
            Assert.True(cfg.IsEnabled);
            foreach (var k in ThreadKinds.All) Assert.Equal(DefaultFilters.Get(k), cfg.Get(k).ToArray());

            // A Firecracker file (no "process") gets the built-in baseline.
            var roles = System.Text.Json.Nodes.JsonNode.Parse(DefaultFilters.Json)!.AsObject();
            roles.Remove("process");
            File.WriteAllText(path, roles.ToJsonString());
            Assert.Equal(DefaultFilters.Get(ThreadKind.Process), SeccompConfig.Load(path).Get(ThreadKind.Process).ToArray());

            File.WriteAllText(path, """{"vmm": {"default_action": "trap", "filter_action": "allow", "filter": []}}""");
            Assert.Contains("no filter for the 'api' thread kind", Assert.Throws<SeccompConfigException>(() => SeccompConfig.Load(path)).Message);
            Assert.Contains("Failed to read", Assert.Throws<SeccompConfigException>(() => SeccompConfig.Load(Path.Combine(dir, "missing.json"))).Message);
        }
        finally { Directory.Delete(dir, true); }

        Assert.False(SeccompConfig.Disabled.IsEnabled);
        Assert.True(SeccompConfig.Disabled.Get(ThreadKind.Vcpu).IsEmpty);
        Assert.True(SeccompConfig.Disabled.Get(ThreadKind.Process).IsEmpty);
        Assert.Equal(DefaultFilters.Get(ThreadKind.Api), SeccompConfig.Default.Get(ThreadKind.Api).ToArray());
    }
}

/// <summary>The vhost-user additions, each on the one thread that needs it and only with the arguments Flint uses.</summary>
public class VhostUserFilterTests
{
    private const uint Allow = Bpf.SECCOMP_RET_ALLOW, Trap = Bpf.SECCOMP_RET_TRAP;

    private static int Nr(string name) => SyscallTable.TryGetNumber(name, out int n) ? n : throw new ArgumentException(name);

    [Fact]
    public void Vmm_may_make_memfd_guest_ram_and_bound_the_backends_answers()
    {
        var vmm = DefaultFilters.Get(ThreadKind.Vmm);
        Assert.Equal(Allow, BpfInterpreter.Run(vmm, Nr("memfd_create"), [0, 1]));          // MFD_CLOEXEC
        Assert.Equal(Trap, BpfInterpreter.Run(vmm, Nr("memfd_create"), [0, 5]));           // MFD_HUGETLB: not used
        Assert.Equal(Allow, BpfInterpreter.Run(vmm, Nr("setsockopt"), [3, 1, 20]));        // SOL_SOCKET, SO_RCVTIMEO
        Assert.Equal(Trap, BpfInterpreter.Run(vmm, Nr("setsockopt"), [3, 1, 25]));         // SO_BINDTODEVICE
        Assert.Equal(Allow, BpfInterpreter.Run(vmm, Nr("madvise"), [0, 0, 9]));            // MADV_REMOVE
        Assert.Equal(Trap, BpfInterpreter.Run(vmm, Nr("recvmsg")));                        // answers carry no fds
    }

    [Fact]
    public void A_vcpu_may_only_send_without_waiting()
    {
        var vcpu = DefaultFilters.Get(ThreadKind.Vcpu);
        Assert.Equal(Allow, BpfInterpreter.Run(vcpu, Nr("sendmsg"), [3, 0, 0x4040]));      // MSG_NOSIGNAL|MSG_DONTWAIT
        Assert.Equal(Trap, BpfInterpreter.Run(vcpu, Nr("sendmsg"), [3, 0, 0x4000]));       // a send that could block
        Assert.Equal(Trap, BpfInterpreter.Run(vcpu, Nr("recvfrom"), [3, 0, 0]));
        Assert.Equal(Trap, BpfInterpreter.Run(vcpu, Nr("memfd_create"), [0, 1]));
        foreach (var kind in new[] { ThreadKind.Api })
        {
            var p = DefaultFilters.Get(kind);
            Assert.Equal(Trap, BpfInterpreter.Run(p, Nr("memfd_create"), [0, 1]));
            Assert.Equal(Trap, BpfInterpreter.Run(p, Nr("sendmsg"), [3, 0, 0x4040]));
        }
    }
}
