using Flint.Seccomp;

namespace Flint.PoolDaemon;

/// <summary>
/// flint-pool's own seccomp filter, on every thread from the start (TSYNC). A deny-list, like flint's process
/// baseline, because the daemon must fork and exec flint-jailer, and a filter is inherited across exec: the jailer
/// still needs mount, pivot_root, unshare, setns, setuid, mknod and chown. What no part of flint-pool, the jailer or
/// flint ever does is refused with EPERM (pool-filter.json says why for each): other processes' memory, kernel
/// modules, kexec, reboot, eBPF, perf, keyrings, host clocks and names, port I/O, handle-based opens. flint stacks its
/// own, stricter filters on top.
/// </summary>
public static class DaemonSeccomp
{
    public static SockFilter[] Compile()
    {
        using var s = typeof(DaemonSeccomp).Assembly.GetManifestResourceStream("Flint.PoolDaemon.pool-filter.json")
            ?? throw new InvalidOperationException("pool-filter.json is not embedded");
        using var r = new StreamReader(s);
        return BpfCompiler.Compile(FilterParser.Parse(r.ReadToEnd())["process"], "process");
    }

    public static void Install() => SeccompFilter.InstallOnAllThreads(Compile());
}
