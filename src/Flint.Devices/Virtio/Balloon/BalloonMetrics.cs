namespace Flint.Devices.Virtio.Balloon;

/// <summary>virtio-balloon counters under Firecracker's <c>balloon</c> metric names, plus two of our own.</summary>
public sealed class BalloonMetrics
{
    public long ActivateFails;
    public long InflateCount;
    public long StatsUpdatesCount;
    public long StatsUpdateFails;
    public long DeflateCount;
    public long EventFails;
    /// <summary>Free page reporting: ranges reported, bytes given back to the host, ranges that could not be.</summary>
    public long FreePageReportCount, FreePageReportFreed, FreePageReportFails;
    /// <summary>Free page hinting: ranges hinted during a run, bytes given back to the host, ranges that could not be.</summary>
    public long FreePageHintCount, FreePageHintFreed, FreePageHintFails;
    /// <summary>Inflate requests too large for one event, continued on the next (not a Firecracker metric).</summary>
    public long InflateResumes;

    /// <summary>Not a Firecracker metric: inflated PFNs outside guest RAM, skipped.</summary>
    public long InvalidPfns;

    /// <summary>Not a Firecracker metric: pages returned to the host by inflation.</summary>
    public long DiscardedPages;

    /// <summary>Firecracker's counters keyed by their JSON names. Allocates: call on flush only.</summary>
    public (string Name, long Value)[] Snapshot() =>
    [
        ("activate_fails", Interlocked.Read(ref ActivateFails)),
        ("inflate_count", Interlocked.Read(ref InflateCount)),
        ("stats_updates_count", Interlocked.Read(ref StatsUpdatesCount)),
        ("stats_update_fails", Interlocked.Read(ref StatsUpdateFails)),
        ("deflate_count", Interlocked.Read(ref DeflateCount)),
        ("event_fails", Interlocked.Read(ref EventFails)),
        ("free_page_report_count", Interlocked.Read(ref FreePageReportCount)),
        ("free_page_report_freed", Interlocked.Read(ref FreePageReportFreed)),
        ("free_page_report_fails", Interlocked.Read(ref FreePageReportFails)),
        ("free_page_hint_count", Interlocked.Read(ref FreePageHintCount)),
        ("free_page_hint_freed", Interlocked.Read(ref FreePageHintFreed)),
        ("free_page_hint_fails", Interlocked.Read(ref FreePageHintFails)),
    ];
}
