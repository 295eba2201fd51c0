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

    public VhostUserBackendProcess(string fileName, IEnumerable<string> args)
    {
        var psi = new ProcessStartInfo(fileName) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        _process = Process.Start(psi)!;
    }

    /// <summary>qemu-storage-daemon exporting <paramref name="image"/> as a writable vhost-user-blk device on <paramref name="socket"/>.</summary>
    public static VhostUserBackendProcess ServeBlock(string image, string socket) =>
        new(QemuStorageDaemon, ["--blockdev", $"driver=file,node-name=file0,filename={image}",
                                "--export", $"type=vhost-user-blk,id=exp0,node-name=file0,addr.type=unix,addr.path={socket},writable=on"]);

    public bool HasExited => _process.HasExited;

    /// <summary>Returns once <paramref name="socket"/> exists; fails the test if the backend exits first or the limit passes.</summary>
    public void WaitForSocket(string socket, TimeSpan limit)
    {
        var sw = Stopwatch.StartNew();
        while (!File.Exists(socket))
        {
            Assert.False(_process.HasExited, "qemu-storage-daemon exited: " + _process.StandardError.ReadToEnd());
            Assert.True(sw.Elapsed < limit, $"qemu-storage-daemon made no socket in {limit.TotalSeconds} s");
            Thread.Sleep(50);
        }
    }

    public void Dispose()
    {
        try { if (!_process.HasExited) { _process.Kill(); _process.WaitForExit(5000); } } catch (InvalidOperationException) { }
        _process.Dispose();
    }
}
