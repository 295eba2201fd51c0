using Flint.Sys;
using static Flint.Sys.JailerLibc;

namespace Flint.Jailer;

/// <summary>
/// flint-jailer: Firecracker's jailer for Flint. Validates everything, then builds
/// <c>&lt;chroot base&gt;/&lt;exec name&gt;/&lt;id&gt;/root</c>, copies the VMM in, joins the network namespace, sets
/// rlimits and cgroups, pivots into the jail with device nodes for /dev/kvm, /dev/net/tun and /dev/urandom,
/// optionally daemonizes and/or starts a new PID namespace, drops to uid/gid, sets the VMM's resource limits and
/// execs the VMM. Any error: a message on stderr, exit 1, and nothing of the jail left behind.
/// </summary>
// SAFETY: syscalls get pinned NUL-terminated strings and stack structs.
public static unsafe class Program
{
    public static int Main(string[] args)
    {
        ulong startUs = NowUs(CLOCK_MONOTONIC);
        ulong startCpuUs = NowUs(CLOCK_PROCESS_CPUTIME_ID);
        CloseInheritedFds();

        try
        {
            JailerOptions o = JailerOptions.Parse(args);
            if (o.Help)
            {
                Console.Out.Write(JailerOptions.Usage);
                return 0;
            }
            if (o.Version)
            {
                Console.Out.WriteLine("flint-jailer 0.1.0");
                return 0;
            }
            JailPlan plan = JailPlan.Create(o);
            return new Jail(plan, startUs, startCpuUs).Run();
        }
        catch (JailerException e)
        {
            Console.Error.WriteLine($"flint-jailer: error: {e.Message}");
            return 1;
        }
        catch (Exception e)
        {
            // A failure nobody foresaw still ends as every jailer error does (Firecracker's jailer: the error on
            // stderr, exit 1), never as an abort with a stack trace.
            Console.Error.WriteLine($"flint-jailer: error: {e.Message}");
            return 1;
        }
    }

    /// <summary>
    /// Closes every inherited descriptor above stderr. Done first thing in Main: the NativeAOT runtime has opened
    /// none of its own by then, and anything .NET opens afterwards is O_CLOEXEC.
    /// </summary>
    private static void CloseInheritedFds()
    {
        if (Raw(SYS_close_range, 3, uint.MaxValue, 0) == 0) return;
        // Kernels before 5.9: walk the descriptor table up to the limit.
        RLimit r;
        ulong max = getrlimit(RLIMIT_NOFILE, &r) == 0 ? Math.Min(r.Cur, 1 << 20) : 1024;
        for (long fd = 3; fd < (long)max; fd++) Raw(SYS_close, fd);
    }
}
