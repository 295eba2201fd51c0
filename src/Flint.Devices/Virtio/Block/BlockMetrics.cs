namespace Flint.Devices.Virtio.Block;

/// <summary>
/// Block device counters under Firecracker's metric names (the names tools read). Fields rather than properties so
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
    ];
}
