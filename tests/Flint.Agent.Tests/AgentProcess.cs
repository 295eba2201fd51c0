using System.Diagnostics;
using System.Reflection;
using System.Text;
using Flint.TestGuest;

namespace Flint.Agent.Tests;

/// <summary>An agent running as a host process on a Unix socket in its own temporary directory; killed on Dispose.</summary>
internal sealed class AgentProcess : IDisposable
{
    private static readonly TimeSpan StartWithin = TimeSpan.FromSeconds(20);
    private readonly Process _p;
    private readonly StringBuilder _log = new();

    public string Dir { get; }
    public string Socket { get; }

    /// <summary>guest/agent/out/flint-agent (built by this project's build).</summary>
    public static string FlintAgentBinary =>
        typeof(AgentProcess).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .Single(a => a.Key == "Flint.Agent.Binary").Value!;

    /// <summary>tests/testguest/out/agent-host: the test guest's agent.c over a Unix socket.</summary>
    public static string TestGuestAgentBinary => Path.Combine(TestGuestImage.SourceDir, "out", "agent-host");

    private AgentProcess(string dir, string binary, Func<string, IEnumerable<string>> args)
    {
        Dir = dir;
        Socket = Path.Combine(dir, "agent.sock");
        var psi = new ProcessStartInfo(binary) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args(Socket)) psi.ArgumentList.Add(a);
        _p = Process.Start(psi)!;
        _p.OutputDataReceived += (_, e) => { if (e.Data != null) lock (_log) _log.AppendLine(e.Data); };
        _p.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (_log) _log.AppendLine(e.Data); };
        _p.BeginOutputReadLine();
        _p.BeginErrorReadLine();
    }

    /// <summary>flint-agent --unix SOCKET --cmdline /dev/null (so this host's kernel cmdline is not read) + args.</summary>
    public static AgentProcess FlintAgent(params string[] args) =>
        new(Directory.CreateTempSubdirectory("flint-agent-").FullName, FlintAgentBinary,
            sock => ["--unix", sock, "--cmdline", "/dev/null", .. args]);

    /// <summary>flint-agent --unix SOCKET + exactly these args (a test of the cmdline file passes its own).</summary>
    public static AgentProcess FlintAgentRaw(string dir, params string[] args) =>
        new(dir, FlintAgentBinary, sock => ["--unix", sock, .. args]);

    /// <summary>The test guest's agent code with one of its built-in handlers (null: the default, upper).</summary>
    public static AgentProcess TestGuestAgent(string? handler = null) =>
        new(Directory.CreateTempSubdirectory("tg-agent-").FullName, TestGuestAgentBinary,
            sock => handler == null ? [sock] : [sock, handler]);

    /// <summary>Writes an executable /bin/sh script of <paramref name="body"/> at <paramref name="path"/>; returns the path.</summary>
    public static string WriteScript(string path, string body)
    {
        File.WriteAllText(path, "#!/bin/sh\n" + body + "\n");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return path;
    }

    public AgentWire Connect(TimeSpan? ioTimeout = null) => AgentWire.ConnectUnix(Socket, StartWithin, ioTimeout);

    public bool HasExited => _p.HasExited;

    /// <summary>
    /// Waits (bounded) for the process to end and for its redirected output to be read to the end: HasExited turns true
    /// before the asynchronous readers have delivered the last lines, so a test reading Log right after it may see none.
    /// </summary>
    public bool WaitForExitAndOutput(TimeSpan within)
    {
        if (!_p.WaitForExit(within)) return false;
        _p.WaitForExit(); // after the exit: returns once both output streams reached EOF
        return true;
    }

    public string Log
    {
        get { lock (_log) return _log.ToString(); }
    }

    private bool _disposed;

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        try { _p.Kill(true); } catch (InvalidOperationException) { }
        _p.WaitForExit(5000);
        _p.Dispose();
        try { Directory.Delete(Dir, true); } catch (IOException) { }
    }
}
