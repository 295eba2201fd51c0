namespace Flint.Tests.Shared;

/// <summary>
/// Whether a Unix socket path is listening, read from /proc/net/unix without connecting: a backend's socket file
/// exists from bind(), before listen(), and a client that connects in between is refused (a vhost-user test failed
/// that way under load). Connecting to probe would use up the one client a vhost-user backend serves.
/// </summary>
public static class UnixListeningSocket
{
    /// <summary>__SO_ACCEPTCON in /proc/net/unix's Flags column: the socket called listen().</summary>
    private const uint AcceptCon = 0x10000;

    public static bool IsListening(string path)
    {
        string full = Path.GetFullPath(path);
        foreach (var line in File.ReadLines("/proc/net/unix").Skip(1))
        {
            var cols = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            // Num RefCount Protocol Flags Type St Inode Path
            if (cols.Length < 8 || cols[7] != full) continue;
            if ((Convert.ToUInt32(cols[3], 16) & AcceptCon) != 0) return true;
        }
        return false;
    }
}
