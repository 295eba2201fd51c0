using Flint.Devices.Metrics;

namespace Flint.Devices.Virtio.Mem;

/// <summary>virtio-mem counters under Firecracker's <c>memory_hotplug</c> metric names, in its order.</summary>
public sealed class VirtioMemMetrics
{
    public long ActivateFails;
    public long QueueEventFails;
    public long QueueEventCount;
    public readonly LatencyAggregate PlugAgg = new();
    public long PlugCount, PlugBytes, PlugFails;
    public readonly LatencyAggregate UnplugAgg = new();
    public long UnplugCount, UnplugBytes, UnplugFails, UnplugDiscardFails;
    public readonly LatencyAggregate UnplugAllAgg = new();
    public long UnplugAllCount, UnplugAllFails;
    public readonly LatencyAggregate StateAgg = new();
    public long StateCount, StateFails;

    /// <summary>Counters keyed by their JSON names (aggregates as <c>name.min_us</c>...). Allocates: flush only.</summary>
    public (string Name, long Value)[] Snapshot() =>
    [
        ("activate_fails", Interlocked.Read(ref ActivateFails)),
        ("queue_event_fails", Interlocked.Read(ref QueueEventFails)),
        ("queue_event_count", Interlocked.Read(ref QueueEventCount)),
        .. PlugAgg.Snapshot("plug_agg"),
        ("plug_count", Interlocked.Read(ref PlugCount)),
        ("plug_bytes", Interlocked.Read(ref PlugBytes)),
        ("plug_fails", Interlocked.Read(ref PlugFails)),
        .. UnplugAgg.Snapshot("unplug_agg"),
        ("unplug_count", Interlocked.Read(ref UnplugCount)),
        ("unplug_bytes", Interlocked.Read(ref UnplugBytes)),
        ("unplug_fails", Interlocked.Read(ref UnplugFails)),
        ("unplug_discard_fails", Interlocked.Read(ref UnplugDiscardFails)),
        .. UnplugAllAgg.Snapshot("unplug_all_agg"),
        ("unplug_all_count", Interlocked.Read(ref UnplugAllCount)),
        ("unplug_all_fails", Interlocked.Read(ref UnplugAllFails)),
        .. StateAgg.Snapshot("state_agg"),
        ("state_count", Interlocked.Read(ref StateCount)),
        ("state_fails", Interlocked.Read(ref StateFails)),
    ];
}
