namespace Flint.Seccomp.Tests;

public class DefaultFilterTests
{
    private const uint Allow = Bpf.SECCOMP_RET_ALLOW, Trap = Bpf.SECCOMP_RET_TRAP;

    private static int Nr(string name) => SyscallTable.TryGetNumber(name, out int n) ? n : throw new ArgumentException(name);

    [Fact]
    public void AllThreeCompileAndAreAllowLists()
    {
        foreach (var kind in ThreadKinds.All)
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
        }
    }

    [Fact]
    public void VcpuAllowsOnlyVcpuIoctls()
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
    }

    [Fact]
    public void ApiAllowsUnixSocketServing()
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
    public void VmmAllowsEventLoopAndBlockIo()
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
    public void ConfigLoadCompilesAFileAndRequiresAllKinds()
    {
        string dir = Directory.CreateTempSubdirectory("flint-seccomp-").FullName;
        try
        {
            string path = Path.Combine(dir, "f.json");
            File.WriteAllText(path, DefaultFilters.Json);
            var cfg = SeccompConfig.Load(path);
            Assert.True(cfg.IsEnabled);
            foreach (var k in ThreadKinds.All) Assert.Equal(DefaultFilters.Get(k), cfg.Get(k).ToArray());

            File.WriteAllText(path, """{"vmm": {"default_action": "trap", "filter_action": "allow", "filter": []}}""");
            Assert.Contains("no filter for the 'api' thread kind", Assert.Throws<SeccompConfigException>(() => SeccompConfig.Load(path)).Message);
            Assert.Contains("Failed to read", Assert.Throws<SeccompConfigException>(() => SeccompConfig.Load(Path.Combine(dir, "missing.json"))).Message);
        }
        finally { Directory.Delete(dir, true); }

        Assert.False(SeccompConfig.Disabled.IsEnabled);
        Assert.True(SeccompConfig.Disabled.Get(ThreadKind.Vcpu).IsEmpty);
        Assert.Equal(DefaultFilters.Get(ThreadKind.Api), SeccompConfig.Default.Get(ThreadKind.Api).ToArray());
    }
}
