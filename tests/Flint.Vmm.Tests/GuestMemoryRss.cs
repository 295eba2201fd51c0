namespace Flint.Vmm.Tests;

/// <summary>
/// How much of a flint process's guest memory is resident, from /proc/PID/smaps: the Rss of its writable mappings
/// at least as large as guest RAM (guest RAM is one anonymous or memfd mapping of exactly its size, which the kernel
/// may merge with a neighbour; nothing else flint maps is that large and writable). What a balloon hands back with
/// MADV_DONTNEED (or a hole punched in the memfd) leaves this figure at once, so before/after differences show it.
/// </summary>
internal static class GuestMemoryRss
{
    /// <summary>Resident KiB of the guest memory mappings of process <paramref name="pid"/>.</summary>
    public static long Kib(int pid, long guestBytes)
    {
        long rss = 0, guestKib = guestBytes >> 10;
        bool guest = false, writable = false;
        foreach (var line in File.ReadLines($"/proc/{pid}/smaps"))
        {
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (f.Length >= 5 && f[0].Contains('-') && !f[0].Contains(':'))
            {
                // "start-end perms offset dev inode [path]": a new mapping; its Size line decides.
                writable = f[1].Length == 4 && f[1][1] == 'w';
                guest = false;
                continue;
            }
            if (f.Length < 2) continue;
            if (f[0] == "Size:") guest = writable && long.Parse(f[1]) >= guestKib;
            else if (f[0] == "Rss:" && guest) rss += long.Parse(f[1]);
        }
        return rss;
    }

    /// <summary>The whole process's resident KiB (VmRSS in /proc/PID/status).</summary>
    public static long ProcessKib(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
        throw new InvalidOperationException("VmRSS not in /proc/PID/status");
    }
}
