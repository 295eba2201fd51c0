using System.Diagnostics;
using System.Text;
using System.Text.RegularExpressions;

namespace Flint.Vmm.Tests;

/// <summary>The published flint-uffd-handler as a process, its output collected (process tests of the Uffd backend).</summary>
internal sealed class UffdHandlerRun : IDisposable
{
    private readonly Process _p;
    private readonly StringBuilder _out = new();

    public UffdHandlerRun(string socket, string memoryFile)
    {
        Assert.True(File.Exists(Repo.UffdHandler), $"{Repo.UffdHandler} is missing: run scripts/setup.sh");
        var psi = new ProcessStartInfo(Repo.UffdHandler, [socket, memoryFile]) { RedirectStandardOutput = true, RedirectStandardError = true };
        _p = Process.Start(psi)!;
        _p.OutputDataReceived += (_, e) => { if (e.Data != null) lock (_out) _out.AppendLine(e.Data); };
        _p.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (_out) _out.AppendLine("stderr: " + e.Data); };
        _p.BeginOutputReadLine();
        _p.BeginErrorReadLine();
        // Its "listening on" line, not the socket file: the file appears at bind, and a connect before listen is refused.
        Assert.True(SpinWait.SpinUntil(() => Output.Contains("listening on") || _p.HasExited, 10_000), "the handler did not start listening:\n" + Output);
    }

    public string Output { get { lock (_out) return _out.ToString(); } }

    /// <summary>Waits (bounded) for the handler to end; its exit code and whole output.</summary>
    public (int Code, string Output) WaitExit(int ms = 30_000)
    {
        Assert.True(_p.WaitForExit(ms), "the handler did not exit:\n" + Output);
        _p.WaitForExit();
        return (_p.ExitCode, Output);
    }

    public static long Served(string output)
    {
        var m = Regex.Match(output, @"served (\d+) pages");
        Assert.True(m.Success, "no 'served N pages' line:\n" + output);
        return long.Parse(m.Groups[1].Value);
    }

    public void Dispose()
    {
        if (!_p.HasExited) { _p.Kill(); _p.WaitForExit(); }
        _p.Dispose();
    }
}
