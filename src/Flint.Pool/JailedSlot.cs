using System.Diagnostics;
using Flint.Client;

namespace Flint.Pool;

/// <summary>
/// A slot that is a flint process started by flint-jailer (its pid is the jailer's: the jailer execs flint), with
/// its API client and one open agent connection. Stopping it kills the process (SIGKILL: the guest is not trusted to
/// shut down), waits for it (bounded), then removes its jail, cgroups and uid.
/// </summary>
public sealed class JailedSlot : ISlot
{
    private readonly Process _process;
    private readonly FirecrackerClient _api;
    private readonly AgentClient _agent;
    private readonly JailLayout _jail;
    private readonly PoolOptions _options;
    private readonly UidAllocator _uids;
    private readonly uint _uid;
    private readonly OutputTail _output;
    private readonly int _maxResultBytes;
    private int _disposed;

    internal JailedSlot(Process process, FirecrackerClient api, AgentClient agent, JailLayout jail, PoolOptions options,
        UidAllocator uids, uint uid, OutputTail output, int maxResultBytes)
    {
        _process = process;
        _api = api;
        _agent = agent;
        _jail = jail;
        _options = options;
        _uids = uids;
        _uid = uid;
        _output = output;
        _maxResultBytes = maxResultBytes;
        Pid = process.Id;
        Exited = WaitExit(process);
    }

    public string Id => _jail.SlotId;
    public int Pid { get; }
    public Task Exited { get; }
    public string JailDir => _jail.JailDir;

    internal static async Task WaitExit(Process p)
    {
        try { await p.WaitForExitAsync(); }
        catch (Exception) { /* the process object was disposed: it is gone for us */ }
    }

    public async Task<InvokeResult> InvokeAsync(string invocationId, ReadOnlyMemory<byte> payload, TimeSpan timeout, CancellationToken ct)
    {
        if (Exited.IsCompleted) throw new AgentException(AgentFailure.Closed, $"the VM had exited ({_output.Last()})");
        try
        {
            return await _agent.InvokeAsync(invocationId, payload, _maxResultBytes, timeout, ct);
        }
        catch (AgentException e) when (e.Failure == AgentFailure.Closed)
        {
            // Give the exit a moment to be seen, so the message can say the VM died rather than just "closed".
            await Task.WhenAny(Exited, Task.Delay(100, CancellationToken.None));
            if (Exited.IsCompleted) throw new AgentException(AgentFailure.Closed, $"the VM exited during the invocation ({_output.Last()})", e);
            throw;
        }
    }

    public async Task<string?> ReadVmmMetricsAsync(CancellationToken ct)
    {
        if (Exited.IsCompleted) return null;
        try { await _api.FlushMetricsAsync(ct); }
        catch (Exception e) when (e is FirecrackerClientException or TimeoutException or HttpRequestException) { return null; }
        return ReadLastLine(_jail.Host(JailLayout.MetricsFile), 256 * 1024);
    }

    /// <summary>The last complete line of a file that flint appends JSON lines to, reading at most <paramref name="max"/> bytes.</summary>
    internal static string? ReadLastLine(string path, int max)
    {
        try
        {
            using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            long len = f.Length;
            int n = (int)Math.Min(len, max);
            var buf = new byte[n];
            f.Position = len - n;
            f.ReadExactly(buf);
            var s = buf.AsSpan().TrimEnd((byte)'\n');
            int nl = s.LastIndexOf((byte)'\n');
            var line = nl < 0 ? s : s[(nl + 1)..];
            return line.Length == 0 ? null : System.Text.Encoding.UTF8.GetString(line);
        }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        _agent.Dispose();
        _api.Dispose();
        await StopProcessAsync(_process);
        await SlotCleanup.RemoveAsync(_options, _jail);
        _uids.Return(_uid);
    }

    /// <summary>SIGKILL, then wait up to 5 s for the kernel to reap it (a process in D state can take a moment).</summary>
    internal static async Task StopProcessAsync(Process p)
    {
        try { if (!p.HasExited) p.Kill(); }
        catch (InvalidOperationException) { }
        catch (System.ComponentModel.Win32Exception) { }
        try { await p.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(5)); }
        catch (TimeoutException) { }
        p.Dispose();
    }
}

/// <summary>The last lines a slot's jailer and flint wrote (stdout and stderr), for error messages.</summary>
internal sealed class OutputTail
{
    private readonly Queue<string> _lines = new();

    public void Add(string? line)
    {
        if (line == null) return;
        if (line.Length > 300) line = line[..300];
        lock (_lines)
        {
            _lines.Enqueue(line);
            while (_lines.Count > 20) _lines.Dequeue();
        }
    }

    public string Last(int n = 3)
    {
        lock (_lines)
        {
            var l = _lines.Skip(Math.Max(0, _lines.Count - n)).ToArray();
            return l.Length == 0 ? "no output" : "its last output: " + string.Join(" | ", l);
        }
    }
}
