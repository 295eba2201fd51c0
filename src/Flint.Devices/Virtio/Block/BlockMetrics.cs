using Flint.Devices.Metrics;

namespace Flint.Devices.Virtio.Block;

/// <summary>
/// Block device counters under Firecracker's metric names (src/vmm/src/devices/virtio/block/virtio/metrics.rs). Fields rather than properties so
/// updates are a single Interlocked op; they are bumped from the event loop, vCPU threads (config, activation) and
/// the API thread (updates), and read by the metrics writer on yet another, so every update is atomic.
/// </summary>
public sealed class BlockMetrics
{
    public long ActivateFails;
    public long CfgFails;
    public long FlushCount;
    public long ReadCount;
    public long WriteCount;
    public long ReadBytes;
    public long WriteBytes;
    public long InvalidReqsCount;
    public long NoAvailBuffer;
    public long EventFails;
    public long QueueEventCount;
    public long ExecuteFails;
    public long UpdateCount;
    /// <summary>Declared by Firecracker but never incremented there (a failed PATCH /drives is an API error); 0 here too.</summary>
    public long UpdateFails;
    /// <summary>At each request taken from the queue, how many more were waiting (Firecracker's block device.rs).</summary>
    public long RemainingReqsCount;
    /// <summary>read_agg / write_agg: how long each read or write request's I/O took.</summary>
    public readonly LatencyAggregate ReadAgg = new(), WriteAgg = new();

    /// <summary>Current values keyed by the JSON names used in the metrics file. Allocates: call on flush only.</summary>
    public (string Name, long Value)[] Snapshot() =>
    [
        ("activate_fails", Interlocked.Read(ref ActivateFails)),
        ("cfg_fails", Interlocked.Read(ref CfgFails)),
        ("flush_count", Interlocked.Read(ref FlushCount)),
        ("read_count", Interlocked.Read(ref ReadCount)),
        ("write_count", Interlocked.Read(ref WriteCount)),
        ("read_bytes", Interlocked.Read(ref ReadBytes)),
        ("write_bytes", Interlocked.Read(ref WriteBytes)),
        ("invalid_reqs_count", Interlocked.Read(ref InvalidReqsCount)),
        ("no_avail_buffer", Interlocked.Read(ref NoAvailBuffer)),
        ("event_fails", Interlocked.Read(ref EventFails)),
        ("queue_event_count", Interlocked.Read(ref QueueEventCount)),
        ("execute_fails", Interlocked.Read(ref ExecuteFails)),
        ("update_count", Interlocked.Read(ref UpdateCount)),
        ("update_fails", Interlocked.Read(ref UpdateFails)),
        ("remaining_reqs_count", Interlocked.Read(ref RemainingReqsCount)),
        .. ReadAgg.Snapshot("read_agg"),
        .. WriteAgg.Snapshot("write_agg"),
    ];
}
