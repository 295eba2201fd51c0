using Flint.Memory;
using Flint.Sys;
using Flint.Vmm.Config;

namespace Flint.Vmm.Builder;

/// <summary>
/// mem_size_mib checks that need the host: a size no process can map is refused before arithmetic on it can wrap,
/// and a size this host cannot map is reported as the size the user asked for (the mmap error names a region's size).
/// </summary>
internal static class GuestMemorySize
{
    /// <summary>
    /// 128 TiB: the x86-64 user address space with 4-level paging, and all that mmap hands out without an address hint
    /// even with 5-level paging. No larger guest can be mapped.
    /// </summary>
    public const long MaxMib = 1L << 27;

    public static ulong Bytes(long mib)
    {
        if (mib > MaxMib)
            throw new ConfigException($"The memory size (MiB) is invalid: mem_size_mib {mib} ({Human(mib)}) is more than a "
                + $"process can map on x86-64 (at most {MaxMib} MiB, 128 TiB).");
        return (ulong)mib << 20;
    }

    public static GuestMemory Allocate(long mib, Func<GuestMemory> create)
    {
        try { return create(); }
        catch (SysException e) when (e.Errno == 12 /* ENOMEM */)
        {
            throw new SysException("mmap guest memory", e.Errno,
                $"this host cannot provide mem_size_mib {mib} ({Human(mib)}) of guest memory: lower mem_size_mib"
                + (e.Message.Contains("huge pages", StringComparison.Ordinal)
                    ? ", or reserve more 2 MiB huge pages (too few free: see HugePages_Free in /proc/meminfo, reserve more in /proc/sys/vm/nr_hugepages)"
                    : ""));
        }
    }

    private static string Human(long mib) => mib >= 1L << 20 ? $"{mib >> 20} TiB" : mib >= 1024 ? $"{mib >> 10} GiB" : $"{mib} MiB";
}
