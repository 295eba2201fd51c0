using System.Text.Json;
using Flint.Vmm.Config;

namespace Flint.Vmm.Metrics;

/// <summary>Binds a VM's counters into the registry under Firecracker's group and counter names.</summary>
public static class VmmMetricsBinding
{
    /// <summary>
    /// Before the VM is built: a <c>block_{id}</c> / <c>net_{id}</c> object (zeros) for each configured drive and
    /// interface, as Firecracker allocates a device's metrics when PUT /drives or PUT /network-interfaces creates it.
    /// </summary>
    public static void BindConfigured(MetricsRegistry r, Func<VmConfig?> config)
    {
        // A vhost-user drive has vhost_user_block_{id} metrics instead of block_{id} (Firecracker allocates only those).
        r.BindDevices("block", Stable(() => (config()?.Drives ?? []).Where(d => d.Socket == null).Select(d => d.DriveId)));
        r.BindDevices("vhost_user", Stable(() => (config()?.Drives ?? []).Where(d => d.Socket != null).Select(d => "block_" + d.DriveId)));
        r.BindDevices("net", Stable(() => (config()?.NetworkInterfaces ?? []).Select(IfaceId).OfType<string>()));
    }

    /// <summary>
    /// The ids as zero-valued devices. The configuration belongs to the VMM thread; a flush from another thread that
    /// meets it in the middle of a change reports the ids it read last time rather than failing.
    /// </summary>
    private static Func<IEnumerable<MetricsRegistry.DeviceSource>> Stable(Func<IEnumerable<string>> ids)
    {
        MetricsRegistry.DeviceSource[] last = [];
        return () =>
        {
            try { last = ids().Select(id => new MetricsRegistry.DeviceSource(id, null)).ToArray(); }
            catch (InvalidOperationException) { }
            return last;
        };
    }

    public static void Bind(MetricsRegistry r, Vmm vmm)
    {
        var v = vmm.VcpuMetrics;
        r.Bind("vcpu", "exit_io_in", () => Interlocked.Read(ref v.ExitIoIn));
        r.Bind("vcpu", "exit_io_out", () => Interlocked.Read(ref v.ExitIoOut));
        r.Bind("vcpu", "exit_mmio_read", () => Interlocked.Read(ref v.ExitMmioRead));
        r.Bind("vcpu", "exit_mmio_write", () => Interlocked.Read(ref v.ExitMmioWrite));
        r.Bind("vcpu", "failures", () => Interlocked.Read(ref v.Failures));
        r.Bind("vcpu", "kvmclock_ctrl_fails", () => Interlocked.Read(ref v.KvmclockCtrlFails));
        r.BindAggregate("vcpu", "exit_io_in_agg", v.ExitIoInAgg);
        r.BindAggregate("vcpu", "exit_io_out_agg", v.ExitIoOutAgg);
        r.BindAggregate("vcpu", "exit_mmio_read_agg", v.ExitMmioReadAgg);
        r.BindAggregate("vcpu", "exit_mmio_write_agg", v.ExitMmioWriteAgg);

        var u = vmm.Serial.Metrics;
        r.Bind("uart", "error_count", () => u.ErrorCount);
        r.Bind("uart", "flush_count", () => u.FlushCount);
        r.Bind("uart", "missed_read_count", () => u.MissedReadCount);
        r.Bind("uart", "missed_write_count", () => u.MissedWriteCount);
        r.Bind("uart", "read_count", () => u.ReadCount);
        r.Bind("uart", "write_count", () => u.WriteCount);
        r.Bind("uart", "rate_limiter_dropped_bytes", () => u.RateLimiterDroppedBytes);

        var k = vmm.I8042.Metrics;
        r.Bind("i8042", "error_count", () => k.ErrorCount);
        r.Bind("i8042", "missed_read_count", () => k.MissedReadCount);
        r.Bind("i8042", "missed_write_count", () => k.MissedWriteCount);
        r.Bind("i8042", "read_count", () => k.ReadCount);
        r.Bind("i8042", "reset_count", () => k.ResetCount);
        r.Bind("i8042", "write_count", () => k.WriteCount);

        BindDevices(r, vmm);
    }

    /// <summary>
    /// Per registry, per group: the last counters of each device id seen. Firecracker allocates a device's metrics
    /// once per id and never drops them, so an unplugged device keeps its (frozen) block_{id} object and a device
    /// re-plugged under the same id counts on from there; this keeps that behaviour across hotplug.
    /// </summary>
    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<MetricsRegistry, Dictionary<string, Dictionary<string, (object? Device, MetricsRegistry.DeviceSource Source)>>> s_seen = new();

    /// <summary>
    /// The per-device groups (block, vhost_user, net, pmem and the sums built on them), from the VM's current devices:
    /// at the start and again after every hotplug or unplug (the VMM thread changes the lists, then rebinds).
    /// </summary>
    public static void BindDevices(MetricsRegistry r, Vmm vmm)
    {
        var seen = s_seen.GetOrCreateValue(r);
        // block_{id} / net_{id} per device; "block" / "net" are their sum (the registry adds them up).
        var d = vmm.Devices;
        var blocks = d.Blocks.Select(b => ((object?)b.Device, new MetricsRegistry.DeviceSource(b.Id, () =>
            [.. b.Device.Metrics.Snapshot(), ("rate_limiter_throttled_events", b.Device.RateLimiterThrottledEvents),
             ("rate_limiter_event_count", b.Device.RateLimiterEventCount),
             ("io_engine_throttled_events", b.Device.IoEngineThrottledEvents)]))).ToArray();
        r.BindDevices("block", Keep(seen, "block", blocks));
        var vhostUser = d.VhostUserBlocks.Select(b => new MetricsRegistry.DeviceSource("block_" + b.DriveId, b.Metrics.Snapshot)).ToArray();
        r.BindDevices("vhost_user", () => vhostUser);
        var nets = d.Nets.Select(n => ((object?)n.Device, new MetricsRegistry.DeviceSource(n.Id, n.Device.Metrics.Snapshot))).ToArray();
        r.BindDevices("net", Keep(seen, "net", nets));
        // Firecracker's mmds group is process-wide: the sum over the interfaces that serve MMDS.
        r.BindSum("mmds", d.Nets.Where(n => n.Mmds != null).Select(n => (Func<(string, long)[]>)n.Mmds!.Metrics.Snapshot).ToArray());
        if (d.Vsock is { } vs) r.BindSum("vsock", [vs.Metrics.Snapshot]);
        if (d.Rng is { } rng) r.BindSum("entropy", [rng.Metrics.Snapshot]);
        if (d.Balloon is { } bal) r.BindSum("balloon", [bal.Metrics.Snapshot]);
        // pmem_{id} per device (Firecracker allocates them as the devices are created, at start); "pmem" is their sum.
        var pmems = d.Pmems.Select(p => ((object?)p, new MetricsRegistry.DeviceSource(p.Id, p.Metrics.Snapshot))).ToArray();
        r.BindDevices("pmem", Keep(seen, "pmem", pmems));
        if (d.Memory is { } hotplug) r.BindSum("memory_hotplug", [hotplug.Metrics.Snapshot]);
    }

    /// <summary>
    /// The current devices of <paramref name="group"/>, plus every id seen before and gone now (its counters frozen at
    /// their last value); an id that comes back reads its old counters plus the new device's.
    /// </summary>
    private static Func<IEnumerable<MetricsRegistry.DeviceSource>> Keep(
        Dictionary<string, Dictionary<string, (object? Device, MetricsRegistry.DeviceSource Source)>> seen, string group,
        (object? Device, MetricsRegistry.DeviceSource Source)[] current)
    {
        if (!seen.TryGetValue(group, out var before)) before = new(StringComparer.Ordinal);
        var now = new Dictionary<string, (object? Device, MetricsRegistry.DeviceSource Source)>(StringComparer.Ordinal);
        foreach (var (device, c) in current)
        {
            var src = c;
            if (before.TryGetValue(c.Id, out var old))
            {
                // The same device as last time keeps its source; a new device under an old id adds to the old counters.
                if (ReferenceEquals(old.Device, device)) src = old.Source;
                else if (old.Source.Read is { } oldRead && c.Read is { } newRead)
                {
                    var frozen = oldRead();
                    src = new MetricsRegistry.DeviceSource(c.Id, () => Add(frozen, newRead()));
                }
            }
            now[c.Id] = (device, src);
        }
        foreach (var (id, old) in before)
        {
            if (now.ContainsKey(id) || old.Source.Read is not { } oldRead) continue;
            var frozen = old.Device == null ? null : oldRead();
            now[id] = (null, frozen == null ? old.Source : new MetricsRegistry.DeviceSource(id, () => frozen));
        }
        seen[group] = now;
        var list = now.Values.Select(v => v.Source).ToArray();
        return () => list;
    }

    private static (string Name, long Value)[] Add((string Name, long Value)[] a, (string Name, long Value)[] b)
    {
        var sum = new (string Name, long Value)[b.Length];
        for (int i = 0; i < b.Length; i++)
        {
            long prior = 0;
            foreach (var (n, v) in a) if (n == b[i].Name) { prior = v; break; }
            sum[i] = (b[i].Name, prior + b[i].Value);
        }
        return sum;
    }

    private static string? IfaceId(JsonElement e) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty("iface_id", out var id) && id.ValueKind == JsonValueKind.String
            ? id.GetString() : null;
}
