using System.Diagnostics;
using System.Text;

namespace Flint.Memory.Tests;

/// <summary>The real flint-uffd-handler as a process (the build's dll under dotnet), its output collected.</summary>
internal sealed class UffdHandlerProcess : IDisposable
{
    private readonly Process _p;
    private readonly StringBuilder _out = new();

    public UffdHandlerProcess(string socket, string memoryFile, params string[] extra)
    {
        string dll = Path.Combine(AppContext.BaseDirectory, "flint-uffd-handler.dll");
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { dll, socket, memoryFile }.Concat(extra)) psi.ArgumentList.Add(a);
        _p = Process.Start(psi)!;
        _p.OutputDataReceived += (_, e) => { if (e.Data != null) lock (_out) _out.AppendLine(e.Data); };
        _p.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (_out) _out.AppendLine("stderr: " + e.Data); };
        _p.BeginOutputReadLine();
        _p.BeginErrorReadLine();
        // Its "listening on" line, not the socket file: the file appears at bind, and a connect before listen is refused.
        Assert.True(SpinWait.SpinUntil(() => Output.Contains("listening on") || _p.HasExited, 30_000), "the handler did not start listening:\n" + Output);
        Assert.False(_p.HasExited, "the handler exited at once:\n" + Output);
    }

    public int Pid => _p.Id;

    public string Output { get { lock (_out) return _out.ToString(); } }

    /// <summary>Waits for the process to end (bounded) and returns its exit code and full output.</summary>
    public (int Code, string Output) WaitExit(int ms = 30_000)
    {
        Assert.True(_p.WaitForExit(ms), "the handler did not exit:\n" + Output);
        _p.WaitForExit(); // drains the output pipes
        return (_p.ExitCode, Output);
    }

    /// <summary>
    /// Runs <paramref name="touch"/> on a thread (a fault nobody serves would block it forever), bounded; what it throws
    /// (a failed assertion) is rethrown here, since an exception left on a thread of its own ends the test host.
    /// <paramref name="late"/> is the failure's words when it does not end in time.
    /// </summary>
    public void Bounded(Action touch, int ms = 30_000, string late = "a page fault was not served in time")
    {
        Exception? error = null;
        var t = new Thread(() => { try { touch(); } catch (Exception e) { error = e; } }) { IsBackground = true };
        t.Start();
        Assert.True(t.Join(ms), late + ":\n" + Output);
        if (error != null) throw error;
    }

    /// <summary>The count from "served N pages" on its last line.</summary>
    public static long Served(string output)
    {
        var m = System.Text.RegularExpressions.Regex.Match(output, @"served (\d+) pages");
        Assert.True(m.Success, "no 'served N pages' line:\n" + output);
        return long.Parse(m.Groups[1].Value);
    }

    public void Dispose()
    {
        if (!_p.HasExited) { _p.Kill(); _p.WaitForExit(); }
        _p.Dispose();
    }
}
