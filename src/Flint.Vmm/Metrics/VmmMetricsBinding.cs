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
        r.Bind("vcpu", "kvmclock_ctrl_fails", () => Interlocked.Read(ref v.KvmclockCtrlFails));

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

        // Device groups aggregate every device of the kind, as Firecracker's do.
        var d = vmm.Devices;
        BindSum(r, "block", d.Blocks.Select(b => (Func<(string, long)[]>)(() =>
            [.. b.Device.Metrics.Snapshot(), ("rate_limiter_throttled_events", b.Device.RateLimiterThrottledEvents),
             ("rate_limiter_event_count", b.Device.RateLimiterEventCount),
             ("io_engine_throttled_events", b.Device.IoEngineThrottledEvents)])));
        BindSum(r, "net", d.Nets.Select(n => (Func<(string, long)[]>)n.Device.Metrics.Snapshot));
        BindSum(r, "mmds", d.Nets.Where(n => n.Mmds != null).Select(n => (Func<(string, long)[]>)n.Mmds!.Metrics.Snapshot));
        if (d.Vsock is { } vs) BindSum(r, "vsock", [vs.Metrics.Snapshot]);
        if (d.Rng is { } rng) BindSum(r, "entropy", [rng.Metrics.Snapshot]);
        if (d.Balloon is { } bal) BindSum(r, "balloon", [bal.Metrics.Snapshot]);
    }

    /// <summary>Binds each counter of a group to the sum of that counter over several devices' snapshots.</summary>
    private static void BindSum(MetricsRegistry r, string group, IEnumerable<Func<(string Name, long Value)[]>> sources)
    {
        var list = sources.ToList();
        if (list.Count == 0) return;
        foreach (var (name, _) in list[0]())
        {
            string n = name;
            r.Bind(group, n, () =>
            {
                long sum = 0;
                foreach (var src in list)
                    foreach (var (k, v) in src())
                        if (k == n) sum += v;
                return sum;
            });
        }
    }
}
