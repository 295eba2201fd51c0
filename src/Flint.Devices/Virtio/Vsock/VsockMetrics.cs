namespace Flint.Devices.Virtio.Vsock;

/// <summary>
/// vsock counters under Firecracker's metric names ("rx" is toward the guest, "tx" from it). Fields so updates are
/// one Interlocked op; the metrics writer reads them from another thread.
/// </summary>
public sealed class VsockMetrics
{
    public long ActivateFails;
    public long CfgFails;
    public long RxQueueEventFails;
    public long TxQueueEventFails;
    public long EvQueueEventFails;
    public long MuxerEventFails;
    public long ConnEventFails;
    public long RxQueueEventCount;
    public long TxQueueEventCount;
    public long RxBytesCount;
    public long TxBytesCount;
    public long RxPacketsCount;
    public long TxPacketsCount;
    public long ConnsAdded;
    public long ConnsKilled;
    public long ConnsRemoved;
    public long KillqResync;
    public long TxFlushFails;
    public long TxWriteFails;
    public long RxReadFails;

    /// <summary>Not a Firecracker counter: guest packets dropped or answered with RST as malformed.</summary>
    public long InvalidPackets;

    /// <summary>Current values keyed by the JSON names of the metrics file's "vsock" group. Allocates: call on flush only.</summary>
    public (string Name, long Value)[] Snapshot() =>
    [
        ("activate_fails", Interlocked.Read(ref ActivateFails)),
        ("cfg_fails", Interlocked.Read(ref CfgFails)),
        ("rx_queue_event_fails", Interlocked.Read(ref RxQueueEventFails)),
        ("tx_queue_event_fails", Interlocked.Read(ref TxQueueEventFails)),
        ("ev_queue_event_fails", Interlocked.Read(ref EvQueueEventFails)),
        ("muxer_event_fails", Interlocked.Read(ref MuxerEventFails)),
        ("conn_event_fails", Interlocked.Read(ref ConnEventFails)),
        ("rx_queue_event_count", Interlocked.Read(ref RxQueueEventCount)),
        ("tx_queue_event_count", Interlocked.Read(ref TxQueueEventCount)),
        ("rx_bytes_count", Interlocked.Read(ref RxBytesCount)),
        ("tx_bytes_count", Interlocked.Read(ref TxBytesCount)),
        ("rx_packets_count", Interlocked.Read(ref RxPacketsCount)),
        ("tx_packets_count", Interlocked.Read(ref TxPacketsCount)),
        ("conns_added", Interlocked.Read(ref ConnsAdded)),
        ("conns_killed", Interlocked.Read(ref ConnsKilled)),
        ("conns_removed", Interlocked.Read(ref ConnsRemoved)),
        ("killq_resync", Interlocked.Read(ref KillqResync)),
        ("tx_flush_fails", Interlocked.Read(ref TxFlushFails)),
        ("tx_write_fails", Interlocked.Read(ref TxWriteFails)),
        ("rx_read_fails", Interlocked.Read(ref RxReadFails)),
    ];
}
