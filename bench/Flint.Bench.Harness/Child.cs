using System.Diagnostics;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Flint.Bench.Harness;

/// <summary>
/// A child started with posix_spawn (vfork-style, the same cost for flint and QEMU): stdin from /dev/null,
/// stdout either to /dev/null or to a pipe whose lines are time-stamped by a reader thread; stderr to /dev/null.
/// </summary>
internal sealed unsafe class Child : IDisposable
{
    public int Pid { get; }
    public long SpawnTimestamp { get; }
    private readonly Thread? _reader;
    private readonly List<(long Ts, string Line)> _lines = new();
    private bool _reaped;
    public int ExitStatus { get; private set; } = -1;
    public Native.Rusage Usage { get; private set; }

    private Child(int pid, long ts, SafeFileHandle? stdoutRead)
    {
        Pid = pid;
        SpawnTimestamp = ts;
        if (stdoutRead != null)
        {
            _reader = new Thread(() => ReadLines(stdoutRead)) { IsBackground = true, Name = $"stdout-{pid}" };
            _reader.Start();
        }
    }

    public static Child Start(string exe, IReadOnlyList<string> args, bool captureStdout)
    {
        byte* fa = stackalloc byte[256];
        Native.posix_spawn_file_actions_init(fa);
        int[] p = new int[2];
        bool piped = false;
        try
        {
            Native.posix_spawn_file_actions_addopen(fa, 0, "/dev/null", Native.O_RDONLY, 0);
            if (captureStdout)
            {
                fixed (int* pp = p)
                    if (Native.pipe2(pp, Native.O_CLOEXEC) != 0) throw new IOException($"pipe2: errno {Marshal.GetLastPInvokeError()}");
                piped = true;
                Native.posix_spawn_file_actions_adddup2(fa, p[1], 1);
            }
            else
            {
                Native.posix_spawn_file_actions_addopen(fa, 1, "/dev/null", Native.O_WRONLY, 0);
            }
            Native.posix_spawn_file_actions_addopen(fa, 2, "/dev/null", Native.O_WRONLY, 0);

            var argv = new List<string> { exe };
            argv.AddRange(args);
            var env = new List<string>();
            foreach (System.Collections.DictionaryEntry e in Environment.GetEnvironmentVariables()) env.Add($"{e.Key}={e.Value}");
            var allocs = new List<nint>();
            nint* av = stackalloc nint[argv.Count + 1];
            nint* ev = stackalloc nint[env.Count + 1];
            for (int i = 0; i < argv.Count; i++) allocs.Add(av[i] = Marshal.StringToCoTaskMemUTF8(argv[i]));
            for (int i = 0; i < env.Count; i++) allocs.Add(ev[i] = Marshal.StringToCoTaskMemUTF8(env[i]));
            av[argv.Count] = 0;
            ev[env.Count] = 0;
            long ts = Stopwatch.GetTimestamp();
            int rc = Native.posix_spawn(out int pid, exe, fa, null, av, ev);
            foreach (var a in allocs) Marshal.FreeCoTaskMem(a);
            if (rc != 0) throw new IOException($"posix_spawn {exe}: errno {rc}");
            SafeFileHandle? rd = null;
            if (piped)
            {
                Native.close(p[1]);
                rd = new SafeFileHandle(p[0], ownsHandle: true);
            }
            return new Child(pid, ts, rd);
        }
        finally
        {
            Native.posix_spawn_file_actions_destroy(fa);
        }
    }

    private void ReadLines(SafeFileHandle h)
    {
        using var fs = new FileStream(h, FileAccess.Read, 1);
        var buf = new byte[65536];
        var cur = new List<byte>(256);
        try
        {
            int n;
            while ((n = fs.Read(buf, 0, buf.Length)) > 0)
            {
                long ts = Stopwatch.GetTimestamp();
                for (int i = 0; i < n; i++)
                {
                    if (buf[i] == (byte)'\n')
                    {
                        string line = System.Text.Encoding.UTF8.GetString(cur.ToArray()).TrimEnd('\r');
                        lock (_lines) { _lines.Add((ts, line)); Monitor.PulseAll(_lines); }
                        cur.Clear();
                    }
                    else cur.Add(buf[i]);
                }
            }
        }
        catch (IOException) { }
        lock (_lines) { StdoutClosed = true; Monitor.PulseAll(_lines); }
    }

    public bool StdoutClosed { get; private set; }

    public IReadOnlyList<(long Ts, string Line)> Lines { get { lock (_lines) return _lines.ToArray(); } }

    /// <summary>Waits for a stdout line containing <paramref name="needle"/>; returns its timestamp, or null on timeout / EOF.</summary>
    public long? WaitForLine(string needle, TimeSpan timeout, out string? line)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        lock (_lines)
        {
            int seen = 0;
            while (true)
            {
                for (; seen < _lines.Count; seen++)
                    if (_lines[seen].Line.Contains(needle, StringComparison.Ordinal)) { line = _lines[seen].Line; return _lines[seen].Ts; }
                long left = deadline - Stopwatch.GetTimestamp();
                if (left <= 0 || StdoutClosed) { line = null; return null; }
                Monitor.Wait(_lines, TimeSpan.FromSeconds(Math.Min(0.05, (double)left / Stopwatch.Frequency)));
            }
        }
    }

    public bool HasExited => TryReap(Native.WNOHANG);

    private bool TryReap(int options)
    {
        if (_reaped) return true;
        int r = Native.wait4(Pid, out int status, options, out var ru);
        if (r == Pid)
        {
            _reaped = true;
            ExitStatus = status;
            Usage = ru;
            ExitTimestamp = Stopwatch.GetTimestamp();
            return true;
        }
        return false;
    }

    public long ExitTimestamp { get; private set; }

    public bool WaitForExit(TimeSpan timeout)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (!TryReap(Native.WNOHANG))
        {
            if (Stopwatch.GetTimestamp() > deadline) return false;
            Native.usleep(200);
        }
        return true;
    }

    /// <summary>SIGKILL and reap (so its rusage is known).</summary>
    public void Kill()
    {
        if (_reaped) return;
        Native.kill(Pid, Native.SIGKILL);
        TryReap(0);
    }

    /// <summary>CPU time of all live threads so far, in ms (ns-resolution scheduler accounting, /proc/PID/task/*/schedstat).</summary>
    public double CpuMsSchedstat()
    {
        long ns = 0;
        foreach (var t in Directory.GetDirectories($"/proc/{Pid}/task"))
        {
            try
            {
                var s = File.ReadAllText(Path.Combine(t, "schedstat"));
                ns += long.Parse(s.AsSpan(0, s.IndexOf(' ')));
            }
            catch (IOException) { }
        }
        return ns / 1e6;
    }

    /// <summary>utime+stime from /proc/PID/stat, in ms (clock-tick resolution, usually 10 ms).</summary>
    public double CpuMsStat()
    {
        var s = File.ReadAllText($"/proc/{Pid}/stat");
        var f = s[(s.LastIndexOf(')') + 2)..].Split(' ');
        // fields after the comm: state is index 0 (field 3); utime = field 14, stime = field 15.
        long ticks = long.Parse(f[11]) + long.Parse(f[12]);
        return ticks * 1000.0 / Native.sysconf(Native._SC_CLK_TCK);
    }

    /// <summary>(Rss, Pss) in KiB from /proc/PID/smaps_rollup.</summary>
    public (long RssKiB, long PssKiB) Memory()
    {
        long rss = 0, pss = 0;
        foreach (var l in File.ReadLines($"/proc/{Pid}/smaps_rollup"))
        {
            if (l.StartsWith("Rss:", StringComparison.Ordinal)) rss = ParseKb(l);
            else if (l.StartsWith("Pss:", StringComparison.Ordinal)) pss = ParseKb(l);
        }
        return (rss, pss);
    }

    /// <summary>RSS in KiB from /proc/PID/smaps, split into the VMM's overhead and guest memory (<see cref="SmapsSplit"/>).</summary>
    public (long OverheadKiB, long GuestKiB) MemoryExcludingGuest(long guestBytes) =>
        SmapsSplit.Split(File.ReadLines($"/proc/{Pid}/smaps"), guestBytes);

    private static long ParseKb(string l) => long.Parse(l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);

    public void Dispose() => Kill();
}
