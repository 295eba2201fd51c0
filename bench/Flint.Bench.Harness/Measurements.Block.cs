namespace Flint.Bench.Harness;

/// <summary>
/// Block throughput and IOPS: the test guest's throughput mode (tests/testguest/blkbench.c) drives one virtio-blk
/// device by polling, on Flint's Sync and Async (io_uring) engines and on QEMU's virtio-blk-device with aio=threads
/// and aio=io_uring; each engine is paired with the QEMU back end that works the same way. Both VMMs use the host's
/// page cache (Flint's default cache_type Unsafe, QEMU's default cache=writeback), so this measures the VMM's request
/// path, not the disk.
/// </summary>
internal sealed partial class Measurements
{
    private sealed record BlockLoad(string Mode, int Bs, int Qd, bool Iops)
    {
        public string Name => $"{Mode} {(Bs >= 1024 ? Bs / 1024 + " KiB" : Bs + " B")}, queue depth {Qd}";
    }

    private static readonly BlockLoad[] BlockLoads =
    [
        new("seq-read", 65536, 4, false),
        new("seq-write", 65536, 4, false),
        new("rand-read", 4096, 1, true),
        new("rand-read", 4096, 8, true),
    ];

    private static readonly (string Engine, string Aio)[] BlockPairs = [("Sync", "threads"), ("Async", "io_uring")];

    private const int BlockDiskMiB = 64;

    public void Block()
    {
        const string sec = "block";
        string disk = NewPath("blkbench") + ".img";
        WriteBlockDisk(disk);
        var rows = new List<(BlockLoad Load, string Engine, string Aio, Series F, Series Q)>();
        foreach (var load in BlockLoads)
            foreach (var (engine, aio) in BlockPairs)
            {
                string metric = $"{load.Name}: Flint io_engine {engine} / QEMU aio={aio}";
                string unit = load.Iops ? "IOPS" : "MiB/s";
                var f = Add(sec, metric, "Flint", unit);
                var q = Add(sec, metric, "QEMU", unit, QemuAccel.GuestRowLabel);
                if (!HasKvm) f.NotMeasured = NoKvm;
                rows.Add((load, engine, aio, f, q));
            }

        foreach (var load in BlockLoads)
        {
            int ops = CalibrateOps(load, disk);
            Log($"block: {load.Name}: {ops} requests a run");
            for (int run = 0; run < _s.BlockRuns; run++)
                foreach (var (l, engine, aio, f, q) in rows.Where(r => r.Load == load))
                {
                    if (HasKvm && f.NotMeasured == null) Try(f, () => FlintBlock(l, ops, engine, disk));
                    if (q.NotMeasured == null) Try(q, () => QemuBlock(l, ops, aio, disk));
                }
        }
        File.Delete(disk);
        foreach (var (l, engine, aio, f, q) in rows)
            Log($"block: {l.Name}: flint {engine} {Stats.Median(f.Samples):F1} {f.Unit}, qemu {aio} {Stats.Median(q.Samples):F1} {q.Unit}");
    }

    /// <summary>Runs one measurement; a VMM that cannot run this configuration (say, no io_uring) marks its row instead of stopping the bench.</summary>
    private static void Try(Series s, Func<double> measure)
    {
        try { s.Samples.Add(measure()); }
        catch (Exception e) when (e is TimeoutException or InvalidOperationException)
        {
            s.NotMeasured = e.Message;
            Log($"block: {s.Subject} {s.Metric}: {e.Message}");
        }
    }

    /// <summary>
    /// Requests per run so that one run lasts about <see cref="Settings.BlockRunSeconds"/> on this host (a nested L1 is
    /// hundreds of times slower than hardware): a short probe run of the first VMM that can run the load, scaled.
    /// Every VMM then runs the same count.
    /// </summary>
    private int CalibrateOps(BlockLoad load, string disk)
    {
        int probe = Math.Max(64, load.Qd * 16);
        double seconds;
        try
        {
            var (s, _) = HasKvm ? FlintBlockRun(load, probe, "Sync", disk) : QemuBlockRun(load, probe, "threads", disk);
            seconds = s;
        }
        catch (Exception e) when (e is TimeoutException or InvalidOperationException) { return probe; }
        double want = probe * _s.BlockRunSeconds / Math.Max(seconds, 1e-4);
        int ops = (int)Math.Clamp(want, probe, 500_000);
        return ops / load.Qd * load.Qd;
    }

    private static double Rate(BlockLoad load, int ops, double seconds) =>
        load.Iops ? ops / seconds : (double)ops * load.Bs / seconds / (1 << 20);

    private double FlintBlock(BlockLoad load, int ops, string engine, string disk) =>
        Rate(load, ops, FlintBlockRun(load, ops, engine, disk).Seconds);

    private double QemuBlock(BlockLoad load, int ops, string aio, string disk) =>
        Rate(load, ops, QemuBlockRun(load, ops, aio, disk).Seconds);

    private static string BlockCmdline(BlockLoad load, int ops) =>
        $"tg.boottimer=0 tg.tests=blkbench tg.blk.bench={load.Mode},{ops},{load.Bs},{load.Qd}";

    private (double Seconds, string Done) FlintBlockRun(BlockLoad load, int ops, string engine, string disk)
    {
        string cfg = NewPath("blk") + ".json";
        File.WriteAllText(cfg, $"{{\"boot-source\": {{\"kernel_image_path\": {J(_s.TestGuest)}, \"boot_args\": \"{BlockCmdline(load, ops)}\"}}, " +
            $"\"drives\": [{{\"drive_id\": \"disk\", \"path_on_host\": {J(disk)}, \"is_root_device\": false, \"is_read_only\": false, \"io_engine\": \"{engine}\"}}], " +
            "\"machine-config\": {\"vcpu_count\": 1, \"mem_size_mib\": 128}}");
        using var c = Child.Start(_s.Flint, new[] { "--no-api", "--config-file", cfg }, true);
        try { return TimeBlockRun(c, $"flint io_engine {engine}"); }
        finally { c.Kill(); File.Delete(cfg); }
    }

    private (double Seconds, string Done) QemuBlockRun(BlockLoad load, int ops, string aio, string disk)
    {
        using var c = Child.Start(_s.Qemu, (string[])
        [
            "-M", "microvm,x-option-roms=off,rtc=off,acpi=off", .. QemuAccel.Args, "-m", "128", "-smp", "1",
            "-display", "none", "-monitor", "none", "-nodefaults", "-no-reboot",
            "-kernel", _s.TestGuest, "-append", BlockCmdline(load, ops),
            "-global", "virtio-mmio.force-legacy=false",
            "-drive", $"file={disk},if=none,id=d,format=raw,cache=writeback,aio={aio}", "-device", "virtio-blk-device,drive=d",
            "-serial", "stdio",
        ], true);
        try { return TimeBlockRun(c, $"qemu aio={aio}"); }
        finally { c.Kill(); }
    }

    /// <summary>
    /// The host's clock from the guest's `blkbench start` line to its `done` line (the guest's own TSC figure is only as
    /// good as the TSC frequency it is told, which it has to assume on some VMMs).
    /// </summary>
    private static (double Seconds, string Done) TimeBlockRun(Child c, string who)
    {
        var limit = Wait(300);
        var start = c.WaitForLine("blkbench start", limit, out _)
                    ?? throw new InvalidOperationException($"{who}: the guest never started the block run{FirstFailure(c)}");
        var done = c.WaitForLine("blkbench done", limit, out var line)
                   ?? throw new InvalidOperationException($"{who}: the block run did not finish{FirstFailure(c)}");
        if (c.WaitForLine("PASS blkbench", Wait(10), out _) == null)
            throw new InvalidOperationException($"{who}: no PASS blkbench{FirstFailure(c)}");
        return (Ms(start, done) / 1000, line!);
    }

    private static string FirstFailure(Child c) =>
        c.Lines.Select(l => l.Line).FirstOrDefault(l => l.StartsWith("FAIL ", StringComparison.Ordinal) || l.Contains("rror", StringComparison.Ordinal)) is { } f
            ? $" ({f.Trim()})" : "";

    private static void WriteBlockDisk(string path)
    {
        // Written out in full (a sparse file reads holes without the page cache doing any work).
        var chunk = new byte[1 << 20];
        new Random(7).NextBytes(chunk);
        using var f = File.Create(path);
        for (int i = 0; i < BlockDiskMiB; i++) f.Write(chunk);
    }
}
