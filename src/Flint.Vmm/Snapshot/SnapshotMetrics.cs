using Flint.Vmm.Metrics;

namespace Flint.Vmm.Snapshot;

/// <summary>
/// Firecracker's latencies_us keys for snapshots. The registry reports counters as deltas since the last flush, so each
/// key accumulates: a flush after one create reads that create's latency, as Firecracker's stored value does.
/// </summary>
public sealed class SnapshotMetrics
{
    private long _fullCreate, _diffCreate, _load, _vmmFullCreate, _vmmDiffCreate, _vmmLoad;

    public void RecordCreate(bool diff, long apiUs, long vmmUs)
    {
        Interlocked.Add(ref diff ? ref _diffCreate : ref _fullCreate, apiUs);
        Interlocked.Add(ref diff ? ref _vmmDiffCreate : ref _vmmFullCreate, vmmUs);
    }

    public void RecordLoad(long apiUs, long vmmUs)
    {
        Interlocked.Add(ref _load, apiUs);
        Interlocked.Add(ref _vmmLoad, vmmUs);
    }

    public void Bind(MetricsRegistry r)
    {
        r.Bind("latencies_us", "full_create_snapshot", () => Interlocked.Read(ref _fullCreate));
        r.Bind("latencies_us", "diff_create_snapshot", () => Interlocked.Read(ref _diffCreate));
        r.Bind("latencies_us", "load_snapshot", () => Interlocked.Read(ref _load));
        r.Bind("latencies_us", "vmm_full_create_snapshot", () => Interlocked.Read(ref _vmmFullCreate));
        r.Bind("latencies_us", "vmm_diff_create_snapshot", () => Interlocked.Read(ref _vmmDiffCreate));
        r.Bind("latencies_us", "vmm_load_snapshot", () => Interlocked.Read(ref _vmmLoad));
    }
}
