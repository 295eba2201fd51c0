using Flint.Devices.Metrics;

namespace Flint.Devices.Virtio.Net;

/// <summary>
/// virtio-net counters under Firecracker's "net" metric names (src/vmm/src/devices/virtio/net/metrics.rs). Fields so each update is one Interlocked op; bumped on
/// the event loop, vCPU threads (config, activation) and the API thread (updates); read by the metrics writer.
/// </summary>
public sealed class NetMetrics
{
    public long ActivateFails;
    public long CfgFails;
    /// <summary>Not a Firecracker metric (its main dropped it): guest writes to the MAC bytes. Not written.</summary>
    public long MacAddressUpdates;
    public long NoRxAvailBuffer;
    public long NoTxAvailBuffer;
    public long EventFails;
    public long RxQueueEventCount;
    public long RxEventRateLimiterCount;
    /// <summary>Not a Firecracker metric (its main dropped it): frames cut short to fit the guest's buffers. Not written.</summary>
    public long RxPartialWrites;
    public long RxRateLimiterThrottled;
    public long RxTapEventCount;
    public long RxBytesCount;
    public long RxPacketsCount;
    public long RxFails;
    public long RxCount;
    public long TapReadFails;
    public long TapWriteFails;
    public long TxBytesCount;
    public long TxMalformedFrames;
    public long TxFails;
    public long TxCount;
    public long TxPacketsCount;
    /// <summary>Not a Firecracker metric (its main dropped it). Not written.</summary>
    public long TxPartialReads;
    public long TxQueueEventCount;
    public long TxRateLimiterEventCount;
    public long TxRateLimiterThrottled;
    public long TxSpoofedMacCount;
    /// <summary>At each tx chain taken from the queue, how many more were waiting (Firecracker's net device.rs).</summary>
    public long TxRemainingReqsCount;
    /// <summary>tap_write_agg: how long each frame's write to the tap took.</summary>
    public readonly LatencyAggregate TapWriteAgg = new();

    /// <summary>Current values keyed by the JSON names used in the metrics file. Allocates: call on flush only.</summary>
    public (string Name, long Value)[] Snapshot() =>
    [
        .. TapWriteAgg.Snapshot("tap_write_agg"),
        ("tx_remaining_reqs_count", Interlocked.Read(ref TxRemainingReqsCount)),
        ("activate_fails", Interlocked.Read(ref ActivateFails)),
        ("cfg_fails", Interlocked.Read(ref CfgFails)),
        ("no_rx_avail_buffer", Interlocked.Read(ref NoRxAvailBuffer)),
        ("no_tx_avail_buffer", Interlocked.Read(ref NoTxAvailBuffer)),
        ("event_fails", Interlocked.Read(ref EventFails)),
        ("rx_queue_event_count", Interlocked.Read(ref RxQueueEventCount)),
        ("rx_event_rate_limiter_count", Interlocked.Read(ref RxEventRateLimiterCount)),
        ("rx_rate_limiter_throttled", Interlocked.Read(ref RxRateLimiterThrottled)),
        ("rx_tap_event_count", Interlocked.Read(ref RxTapEventCount)),
        ("rx_bytes_count", Interlocked.Read(ref RxBytesCount)),
        ("rx_packets_count", Interlocked.Read(ref RxPacketsCount)),
        ("rx_fails", Interlocked.Read(ref RxFails)),
        ("rx_count", Interlocked.Read(ref RxCount)),
        ("tap_read_fails", Interlocked.Read(ref TapReadFails)),
        ("tap_write_fails", Interlocked.Read(ref TapWriteFails)),
        ("tx_bytes_count", Interlocked.Read(ref TxBytesCount)),
        ("tx_malformed_frames", Interlocked.Read(ref TxMalformedFrames)),
        ("tx_fails", Interlocked.Read(ref TxFails)),
        ("tx_count", Interlocked.Read(ref TxCount)),
        ("tx_packets_count", Interlocked.Read(ref TxPacketsCount)),
        ("tx_queue_event_count", Interlocked.Read(ref TxQueueEventCount)),
        ("tx_rate_limiter_event_count", Interlocked.Read(ref TxRateLimiterEventCount)),
        ("tx_rate_limiter_throttled", Interlocked.Read(ref TxRateLimiterThrottled)),
        ("tx_spoofed_mac_count", Interlocked.Read(ref TxSpoofedMacCount)),
    ];
}
