namespace Flint.Bench.Harness;

/// <summary>
/// Splits a process's resident memory as Firecracker's memory cop does (tests/host_tools/memory.py): a mapping at least
/// as large as the guest's memory is guest memory (an x86 guest up to 3 GiB is one region), every other mapping's Rss
/// is the VMM's overhead.
/// </summary>
internal static class SmapsSplit
{
    /// <summary>(overhead, guest) in KiB from the lines of /proc/PID/smaps.</summary>
    public static (long OverheadKiB, long GuestKiB) Split(IEnumerable<string> smaps, long guestBytes)
    {
        long overhead = 0, guest = 0;
        bool isGuest = false;
        foreach (var l in smaps)
        {
            // A mapping's header: "start-end perms offset dev inode [path]", both addresses in hex.
            int dash = l.IndexOf('-');
            int sp = l.IndexOf(' ');
            if (dash > 0 && sp > dash && IsHex(l.AsSpan(0, dash)) && IsHex(l.AsSpan(dash + 1, sp - dash - 1)))
            {
                long start = long.Parse(l.AsSpan(0, dash), System.Globalization.NumberStyles.HexNumber);
                long end = long.Parse(l.AsSpan(dash + 1, sp - dash - 1), System.Globalization.NumberStyles.HexNumber);
                isGuest = end - start >= guestBytes;
            }
            else if (l.StartsWith("Rss:", StringComparison.Ordinal))
            {
                long kb = long.Parse(l.AsSpan(4).Trim().TrimEnd("kB").Trim());
                if (isGuest) guest += kb; else overhead += kb;
            }
        }
        return (overhead, guest);
    }

    private static bool IsHex(ReadOnlySpan<char> s)
    {
        foreach (char c in s) if (!char.IsAsciiHexDigit(c)) return false;
        return s.Length > 0;
    }
}
