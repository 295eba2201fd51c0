using System.Diagnostics;
using System.Net.Sockets;
using System.Text;

namespace Flint.Vmm.Tests;

/// <summary>
/// The published flint started with an API socket in <c>dir/api.sock</c>, as the API process tests drive it: stdin
/// closed (no console input), stdout and stderr drained as lines into <see cref="Output"/> (a full pipe would block
/// flint's threads mid-test), and the constructor returns once the socket exists. Requests go through
/// <see cref="ApiHttp"/>, so every read of an answer is bounded by the socket's receive timeout.
/// </summary>
internal sealed class FlintApiProcess : IDisposable
{
    private readonly StringBuilder _output = new();

    public FlintApiProcess(string dir, params string[] extra)
    {
        Assert.True(File.Exists(Repo.Flint), $"{Repo.Flint} is missing: run scripts/setup.sh");
        Socket = Path.Combine(dir, "api.sock");
        var psi = new ProcessStartInfo(Repo.Flint, ["--api-sock", Socket, .. extra])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };
        Process = Process.Start(psi)!;
        Process.StandardInput.Close();
        Process.OutputDataReceived += (_, e) => { if (e.Data != null) lock (_output) _output.AppendLine(e.Data); };
        Process.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (_output) _output.AppendLine(e.Data); };
        Process.BeginOutputReadLine();
        Process.BeginErrorReadLine();
        Assert.True(SpinWait.SpinUntil(() => File.Exists(Socket) || Process.HasExited, 10_000) && File.Exists(Socket),
            "the API socket did not appear: start-up failed or blocked");
    }

    public Process Process { get; }

    /// <summary>The API socket's path.</summary>
    public string Socket { get; }

    /// <summary>stdout and stderr so far, as lines (all of them once flint has exited: this waits for the pipes to
    /// drain then).</summary>
    public string Output
    {
        get
        {
            if (Process.HasExited) Process.WaitForExit();
            lock (_output) return _output.ToString();
        }
    }

    /// <summary>Output is read asynchronously: gives a line that was already written a moment to arrive.</summary>
    public bool WaitForOutput(string text, int timeoutMs = 10_000) =>
        SpinWait.SpinUntil(() => Output.Contains(text, StringComparison.Ordinal), timeoutMs);

    /// <summary>A keep-alive connection to the API; each read and write waits at most <paramref name="timeoutMs"/>.</summary>
    public Socket Connect(int timeoutMs = 60_000)
    {
        var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
        {
            ReceiveTimeout = timeoutMs,
            SendTimeout = timeoutMs,
        };
        s.Connect(new UnixDomainSocketEndPoint(Socket));
        return s;
    }

    /// <summary>One request on a fresh connection.</summary>
    public (int Status, string Body) Request(string method, string path, string? body = null)
    {
        using var s = Connect(10_000);
        return ApiHttp.Request(s, method, path, body);
    }

    public void Dispose()
    {
        if (!Process.HasExited) { Process.Kill(true); Process.WaitForExit(); }
        Process.Dispose();
    }
}
