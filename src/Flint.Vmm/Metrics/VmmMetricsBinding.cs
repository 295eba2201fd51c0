namespace Flint.Vmm.Metrics;

/// <summary>Binds a built VM's device counters into the registry (Firecracker's group and counter names).</summary>
public static class VmmMetricsBinding
{
    public static void Bind(MetricsRegistry r, Vmm vmm)
    {
        var v = vmm.VcpuMetrics;
        r.Bind("vcpu", "exit_io_in", () => Interlocked.Read(ref v.ExitIoIn));
        r.Bind("vcpu", "exit_io_out", () => Interlocked.Read(ref v.ExitIoOut));
        r.Bind("vcpu", "exit_mmio_read", () => Interlocked.Read(ref v.ExitMmioRead));
        r.Bind("vcpu", "exit_mmio_write", () => Interlocked.Read(ref v.ExitMmioWrite));
        r.Bind("vcpu", "failures", () => Interlocked.Read(ref v.Failures));

        var u = vmm.Serial.Metrics;
        r.Bind("uart", "error_count", () => u.ErrorCount);
        r.Bind("uart", "flush_count", () => u.FlushCount);
        r.Bind("uart", "missed_read_count", () => u.MissedReadCount);
        r.Bind("uart", "missed_write_count", () => u.MissedWriteCount);
        r.Bind("uart", "read_count", () => u.ReadCount);
        r.Bind("uart", "write_count", () => u.WriteCount);

        var k = vmm.I8042.Metrics;
        r.Bind("i8042", "error_count", () => k.ErrorCount);
        r.Bind("i8042", "missed_read_count", () => k.MissedReadCount);
        r.Bind("i8042", "missed_write_count", () => k.MissedWriteCount);
        r.Bind("i8042", "read_count", () => k.ReadCount);
        r.Bind("i8042", "reset_count", () => k.ResetCount);
        r.Bind("i8042", "write_count", () => k.WriteCount);

        // The block group aggregates every drive, as Firecracker's does.
        foreach (var (name, _) in vmm.Blocks.Count > 0 ? vmm.Blocks[0].Device.Metrics.Snapshot() : [])
        {
            string n = name;
            r.Bind("block", n, () => vmm.Blocks.Sum(b => b.Device.Metrics.Snapshot().First(x => x.Name == n).Value));
        }
    }
}
