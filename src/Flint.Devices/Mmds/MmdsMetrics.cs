namespace Flint.Devices.Mmds;

/// <summary>MMDS versions: V1 answers any GET; V2 needs a session token from PUT /latest/api/token.</summary>
public enum MmdsVersion { V1, V2 }

/// <summary>Counters under Firecracker's "mmds" metric names (src/vmm/src/logger/metrics.rs, MmdsMetrics), in its order.</summary>
public sealed class MmdsMetrics
{
    public long RxAccepted;
    public long RxAcceptedErr;
    public long RxAcceptedUnusual;
    public long RxBadEth;
    /// <summary>GET requests whose token is not valid (counted under V1 too, where the answer is served anyway).</summary>
    public long RxInvalidToken;
    /// <summary>GET requests without a token (counted under V1 too).</summary>
    public long RxNoToken;
    public long RxCount;
    public long TxBytes;
    public long TxCount;
    public long TxErrors;
    public long TxFrames;
    public long ConnectionsCreated;
    public long ConnectionsDestroyed;

    public (string Name, long Value)[] Snapshot() =>
    [
        ("rx_accepted", Interlocked.Read(ref RxAccepted)),
        ("rx_accepted_err", Interlocked.Read(ref RxAcceptedErr)),
        ("rx_accepted_unusual", Interlocked.Read(ref RxAcceptedUnusual)),
        ("rx_bad_eth", Interlocked.Read(ref RxBadEth)),
        ("rx_invalid_token", Interlocked.Read(ref RxInvalidToken)),
        ("rx_no_token", Interlocked.Read(ref RxNoToken)),
        ("rx_count", Interlocked.Read(ref RxCount)),
        ("tx_bytes", Interlocked.Read(ref TxBytes)),
        ("tx_count", Interlocked.Read(ref TxCount)),
        ("tx_errors", Interlocked.Read(ref TxErrors)),
        ("tx_frames", Interlocked.Read(ref TxFrames)),
        ("connections_created", Interlocked.Read(ref ConnectionsCreated)),
        ("connections_destroyed", Interlocked.Read(ref ConnectionsDestroyed)),
    ];
}
