using System.Diagnostics;

namespace Flint.Vmm.Tests;

/// <summary>
/// A vhost-user backend process for the KVM tests (Debian's qemu-storage-daemon serving an image file), started and
/// waited for. Pulled out of VhostUserBlockKvmTests so the start and its limits are tested without KVM.
/// </summary>
internal sealed class VhostUserBackendProcess : IDisposable
{
    public const string QemuStorageDaemon = "/usr/bin/qemu-storage-daemon";

    private readonly Process _process;

    private readonly System.Text.StringBuilder _output = new();
    // Never disposed: the reader threads signal each pipe's end, which may come after Dispose (the kill closes the
    // pipes, the callbacks follow on the thread pool); a signal on a disposed event killed the test host nested.
    private readonly CountdownEvent _pipesClosed = new(2);

    public VhostUserBackendProcess(string fileName, IEnumerable<string> args)
    {
        var psi = new ProcessStartInfo(fileName) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        _process = Process.Start(psi)!;
        // Drain both pipes from the start: a backend that fills an unread pipe blocks in write(2), possibly before it
        // makes its socket, and what it wrote is the failure message if it never does.
        _process.OutputDataReceived += (_, e) => Collect(e.Data);
        _process.ErrorDataReceived += (_, e) => Collect(e.Data);
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    /// <summary>A line from either pipe; null is that pipe's end.</summary>
    private void Collect(string? line)
    {
        if (line == null) { _pipesClosed.Signal(); return; }
        lock (_output) _output.AppendLine(line);
    }

    /// <summary>qemu-storage-daemon exporting <paramref name="image"/> as a writable vhost-user-blk device on <paramref name="socket"/>.</summary>
    public static VhostUserBackendProcess ServeBlock(string image, string socket) =>
        new(QemuStorageDaemon, ["--blockdev", $"driver=file,node-name=file0,filename={image}",
                                "--export", $"type=vhost-user-blk,id=exp0,node-name=file0,addr.type=unix,addr.path={socket},writable=on"]);

    public bool HasExited => _process.HasExited;

    /// <summary>What the backend wrote to stdout and stderr so far.</summary>
    public string Output { get { lock (_output) return _output.ToString(); } }

    /// <summary>
    /// Returns once <paramref name="socket"/> is listening. Fails the test, with the backend's output, if the backend exits
    /// first or <paramref name="limit"/> passes (then it is killed: nothing waits on it past its limit). Every step is
    /// bounded: the output is what the drained pipes held, never a read to the end of a pipe a live daemon keeps open.
    /// </summary>
    public void WaitForSocket(string socket, TimeSpan limit)
    {
        var sw = Stopwatch.StartNew();
        // Listening, not just there: the file exists from bind(), and a connect before listen() is refused.
        while (!Flint.Tests.Shared.UnixListeningSocket.IsListening(socket))
        {
            if (_process.HasExited)
            {
                _pipesClosed.Wait(TimeSpan.FromSeconds(5)); // its last lines; bounded, as a child it left may hold the pipes
                Assert.Fail($"{_process.StartInfo.FileName} exited ({_process.ExitCode}) before making its socket: {Output}");
            }
            if (sw.Elapsed >= limit)
            {
                Kill();
                Assert.Fail($"{_process.StartInfo.FileName} made no socket in {limit.TotalSeconds} s (killed); its output: {Output}");
            }
            Thread.Sleep(20);
        }
    }

    private void Kill()
    {
        try { if (!_process.HasExited) { _process.Kill(true); _process.WaitForExit(5000); } } catch (InvalidOperationException) { }
    }

    public void Dispose()
    {
        Kill();
        _process.Dispose();
    }
}
