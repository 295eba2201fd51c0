using System.Diagnostics;

namespace Flint.Devices.Tests.Virtio.VhostUser;

/// <summary>
/// A real vhost-user block backend: Debian's qemu-storage-daemon (package qemu-system-common) exporting a raw image
/// file over a Unix socket. The image holds <see cref="Sectors"/> sectors, sector s filled with byte (s + 1).
/// Tests that need it skip where the binary is absent (<see cref="Available"/>).
/// </summary>
public sealed class QemuStorageDaemon : IDisposable
{
    public const string Binary = "/usr/bin/qemu-storage-daemon";
    public const int Sectors = 64;

    private readonly Process _process;

    public static bool Available => File.Exists(Binary);

    public QemuStorageDaemon(bool readOnly = false, int sectors = Sectors)
    {
        Dir = Directory.CreateTempSubdirectory("flint-vu-").FullName;
        ImagePath = Path.Combine(Dir, "disk.img");
        SocketPath = Path.Combine(Dir, "vu.sock");
        var content = new byte[sectors * 512];
        for (int s = 0; s < sectors; s++) content.AsSpan(s * 512, 512).Fill((byte)(s + 1));
        File.WriteAllBytes(ImagePath, content);
        var psi = new ProcessStartInfo(Binary)
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
        };
        foreach (var a in new[]
        {
            "--blockdev", $"driver=file,node-name=file0,filename={ImagePath}",
            "--export", $"type=vhost-user-blk,id=exp0,node-name=file0,addr.type=unix,addr.path={SocketPath},writable={(readOnly ? "off" : "on")}",
        }) psi.ArgumentList.Add(a);
        _process = Process.Start(psi)!;
        _process.OutputDataReceived += (_, e) => { if (e.Data != null) lock (Log) Log.Add(e.Data); };
        _process.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (Log) Log.Add(e.Data); };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        var sw = Stopwatch.StartNew();
        while (!Flint.Tests.Shared.UnixListeningSocket.IsListening(SocketPath))
        {
            if (_process.HasExited || sw.Elapsed > TimeSpan.FromSeconds(20))
                throw new InvalidOperationException("qemu-storage-daemon did not listen on its socket: " + string.Join("\n", Log));
            Thread.Sleep(20);
        }
    }

    public string Dir { get; }
    public string ImagePath { get; }
    public string SocketPath { get; }
    public List<string> Log { get; } = [];
    public bool HasExited => _process.HasExited;

    /// <summary>The image file as the backend left it.</summary>
    public byte[] ReadImage() => File.ReadAllBytes(ImagePath);

    public void Kill()
    {
        try { if (!_process.HasExited) { _process.Kill(); _process.WaitForExit(5000); } } catch (InvalidOperationException) { }
    }

    public void Dispose()
    {
        Kill();
        _process.Dispose();
        try { Directory.Delete(Dir, true); } catch (IOException) { }
    }
}
