using System.Diagnostics;
using Flint.Devices.Legacy;
using Flint.Vmm.Builder;

namespace Flint.Vmm.Tests;

/// <summary>
/// PUT /serial's output file as the builder opens it: a FIFO nobody reads fills up and then drops bytes at once
/// (uart.error_count) instead of blocking the vCPU that writes them; a regular file gets every byte.
/// </summary>
public sealed class SerialOutFileTests : IDisposable
{
    private readonly string _dir = Repo.TempDir();

    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public void A_fifo_nobody_reads_drops_bytes_without_blocking_the_writer()
    {
        string fifo = Path.Combine(_dir, "console.fifo");
        using (var mk = Process.Start("mkfifo", [fifo])) mk.WaitForExit();
        using var file = SerialOutFile.Open(fifo); // read-write: no ENXIO and no wait for a reader
        var serial = new Serial(file, new NoIrq());
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < 200_000; i++) serial.Write(0, [(byte)'x']); // three times a pipe's 64 KiB
        sw.Stop();
        Assert.True(serial.Metrics.ErrorCount > 0, "a full FIFO must drop bytes");
        Assert.Equal(200_000, serial.Metrics.WriteCount + serial.Metrics.ErrorCount);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(30), $"writing took {sw.Elapsed}");
    }

    [Fact]
    public void A_regular_file_gets_every_byte_and_a_bad_path_is_the_os_error()
    {
        string path = Path.Combine(_dir, "console.log");
        using (var file = SerialOutFile.Open(path))
        {
            var serial = new Serial(file, new NoIrq());
            foreach (var b in "guest says hi\n"u8.ToArray()) serial.Write(0, [b]);
            Assert.Equal(0, serial.Metrics.ErrorCount);
        }
        Assert.Equal("guest says hi\n", File.ReadAllText(path));
        var e = Assert.Throws<IOException>(() => SerialOutFile.Open(Path.Combine(_dir, "no", "such", "dir")));
        Assert.Equal("No such file or directory (os error 2)", e.Message);
    }

    private sealed class NoIrq : Flint.Devices.IInterrupt
    {
        public void Trigger() { }
    }
}
