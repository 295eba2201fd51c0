using System.Diagnostics;
using System.Net.Sockets;
using System.Text;

namespace Flint.Vmm.Tests;

/// <summary>
/// A flint process with an API socket whose stdout (the guest's console) is kept as raw bytes, not lines: a line the
/// guest had half written when it was paused for a snapshot ends in another process. Its log goes to a file
/// (--log-path), so stdout holds the console only. Stdin stays open for the guest's shell.
/// </summary>
internal sealed class FlintConsoleProcess : IDisposable
{
    private readonly MemoryStream _out = new();

    public FlintConsoleProcess(string dir, string name, Action<string>? stderr = null, params string[] extraArgs)
    {
        Socket = Path.Combine(dir, name + ".sock");
        LogPath = Path.Combine(dir, name + ".log");
        var psi = new ProcessStartInfo(Repo.Flint) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        foreach (var a in new[] { "--api-sock", Socket, "--id", name, "--log-path", LogPath }) psi.ArgumentList.Add(a);
        foreach (var a in extraArgs) psi.ArgumentList.Add(a); // e.g. --enable-pci
        Process = Process.Start(psi)!;
        var copy = new Thread(() =>
        {
            var b = new byte[4096];
            int n;
            while ((n = Process.StandardOutput.BaseStream.Read(b, 0, b.Length)) > 0) lock (_out) _out.Write(b, 0, n);
        })
        { IsBackground = true };
        copy.Start();
        Process.ErrorDataReceived += (_, e) => { if (e.Data != null) stderr?.Invoke($"{name} stderr: {e.Data}"); };
        Process.BeginErrorReadLine();
        if (!SpinWait.SpinUntil(() => File.Exists(Socket), 10_000)) throw new TimeoutException($"{name}: the API socket did not appear");
    }

    public Process Process { get; }
    public string Socket { get; }
    public string LogPath { get; }
    public int Pid => Process.Id;

    /// <summary>The console so far.</summary>
    public string Console
    {
        get { lock (_out) return Encoding.UTF8.GetString(_out.GetBuffer(), 0, (int)_out.Length); }
    }

    public bool WaitFor(string text, TimeSpan timeout) => SpinWait.SpinUntil(() => Console.Contains(text, StringComparison.Ordinal), timeout);

    /// <summary>Types <paramref name="line"/> on the guest's serial console.</summary>
    public void Type(string line)
    {
        Process.StandardInput.Write(line + "\n");
        Process.StandardInput.Flush();
    }

    public Socket Connect()
    {
        var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified) { ReceiveTimeout = 120_000, SendTimeout = 60_000 };
        s.Connect(new UnixDomainSocketEndPoint(Socket));
        return s;
    }

    /// <summary>One API call on a fresh connection; asserts 204.</summary>
    public void Ok(string method, string path, string body)
    {
        using var s = Connect();
        var (st, b) = ApiHttp.Request(s, method, path, body);
        Assert.True(st == 204, $"{method} {path}: {st} {b}");
    }

    public string Log => File.Exists(LogPath) ? File.ReadAllText(LogPath) : "";

    public void Kill()
    {
        if (!Process.HasExited) { Process.Kill(true); Process.WaitForExit(); }
    }

    public void Dispose()
    {
        Kill();
        Process.Dispose();
    }
}

/// <summary>What /proc/PID/smaps says about the mapping of one file (a memory file mapped MAP_PRIVATE).</summary>
internal static class Smaps
{
    /// <summary>Rss and Pss in KiB summed over the mappings of <paramref name="path"/> in process <paramref name="pid"/>.</summary>
    public static (long RssKib, long PssKib) OfFile(int pid, string path)
    {
        long rss = 0, pss = 0;
        bool inFile = false;
        foreach (var line in File.ReadLines($"/proc/{pid}/smaps"))
        {
            // A mapping's header: "start-end perms offset dev inode    path"; its fields follow as "Name:  value kB".
            if (IsHeader(line))
            {
                inFile = line.EndsWith(" " + path, StringComparison.Ordinal);
                continue;
            }
            if (!inFile) continue;
            if (line.StartsWith("Rss:", StringComparison.Ordinal)) rss += Kib(line);
            else if (line.StartsWith("Pss:", StringComparison.Ordinal)) pss += Kib(line);
        }
        return (rss, pss);
    }

    /// <summary>A header's first word is the address range ("7f00-7f80"); a field's ends in ':' ("Rss:", "AnonHugePages:").</summary>
    private static bool IsHeader(string line)
    {
        int space = line.IndexOf(' ');
        if (space <= 0) return false;
        var first = line.AsSpan(0, space);
        return first.Contains('-') && !first.Contains(':');
    }

    private static long Kib(string line) => long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);
}
