namespace Flint.Client.Models;

/// <summary>
/// GET /balloon/statistics (swagger <c>BalloonStats</c>). The sizes are always there; the guest-reported counters are
/// present only when the guest driver reported them.
/// </summary>
public sealed record BalloonStats
{
    /// <summary>Target number of 4 KiB pages the device aims to hold.</summary>
    public long TargetPages { get; init; }

    /// <summary>Number of 4 KiB pages the device holds.</summary>
    public long ActualPages { get; init; }

    /// <summary>Target size in MiB.</summary>
    public long TargetMib { get; init; }

    /// <summary>Held size in MiB.</summary>
    public long ActualMib { get; init; }

    /// <summary>Memory swapped in, in bytes.</summary>
    public long? SwapIn { get; init; }

    /// <summary>Memory swapped out, in bytes.</summary>
    public long? SwapOut { get; init; }

    /// <summary>Major page faults.</summary>
    public long? MajorFaults { get; init; }

    /// <summary>Minor page faults.</summary>
    public long? MinorFaults { get; init; }

    /// <summary>Memory not used for anything, in bytes.</summary>
    public long? FreeMemory { get; init; }

    /// <summary>Total memory, in bytes.</summary>
    public long? TotalMemory { get; init; }

    /// <summary>Memory available for new applications without swapping, in bytes.</summary>
    public long? AvailableMemory { get; init; }

    /// <summary>Memory quickly reclaimable without I/O (mostly file caches), in bytes.</summary>
    public long? DiskCaches { get; init; }

    /// <summary>Successful hugetlb page allocations in the guest.</summary>
    public long? HugetlbAllocations { get; init; }

    /// <summary>Failed hugetlb page allocations in the guest.</summary>
    public long? HugetlbFailures { get; init; }

    /// <summary>OOM killer invocations.</summary>
    public long? OomKill { get; init; }

    /// <summary>Allocations that entered the slow path.</summary>
    public long? AllocStall { get; init; }

    /// <summary>Memory scanned asynchronously.</summary>
    public long? AsyncScan { get; init; }

    /// <summary>Memory scanned directly.</summary>
    public long? DirectScan { get; init; }

    /// <summary>Memory reclaimed asynchronously.</summary>
    public long? AsyncReclaim { get; init; }

    /// <summary>Memory reclaimed directly.</summary>
    public long? DirectReclaim { get; init; }
}
