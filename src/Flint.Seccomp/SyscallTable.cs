using System.Diagnostics.CodeAnalysis;

namespace Flint.Seccomp;

public static partial class SyscallTable
{
    /// <summary>Syscalls newer than the build machine's UAPI headers (arch/x86/entry/syscalls/syscall_64.tbl, Linux 6.6-6.15).</summary>
    private static readonly (string Name, int Nr)[] Newer =
    [
        ("cachestat", 451), ("fchmodat2", 452), ("map_shadow_stack", 453), ("futex_wake", 454), ("futex_wait", 455),
        ("futex_requeue", 456), ("statmount", 457), ("listmount", 458), ("lsm_get_self_attr", 459),
        ("lsm_set_self_attr", 460), ("lsm_list_modules", 461), ("mseal", 462), ("setxattrat", 463),
        ("getxattrat", 464), ("listxattrat", 465), ("removexattrat", 466), ("open_tree_attr", 467),
    ];

    /// <summary>The x86_64 number of a syscall name (as in <c>__NR_name</c>), or false when unknown.</summary>
    public static bool TryGetNumber(string name, out int nr)
    {
        if (ByName.TryGetValue(name, out nr)) return true;
        foreach (var (n, v) in Newer)
            if (n == name) { nr = v; return true; }
        nr = -1;
        return false;
    }

    /// <summary>The name of an x86_64 syscall number, or null.</summary>
    public static string? GetName(int nr)
    {
        foreach (var kv in ByName) if (kv.Value == nr) return kv.Key;
        foreach (var (n, v) in Newer) if (v == nr) return n;
        return null;
    }

    /// <summary>How many names the table knows.</summary>
    public static int Count => ByName.Count + Newer.Length;
}
