namespace Flint.Devices.Virtio.Balloon;

/// <summary>virtio-balloon protocol numbers (spec 5.5).</summary>
public static class BalloonConstants
{
    public const int InflateQueue = 0;
    public const int DeflateQueue = 1;
    public const int StatsQueue = 2;

    // Feature bits.
    public const int FeatureStatsVq = 1;
    public const int FeatureDeflateOnOom = 2;

    /// <summary>PFNs are in 4 KiB units whatever the guest's page size.</summary>
    public const int PfnShift = 12;
    public const ulong PageSize = 1UL << PfnShift;
    public const uint PagesPerMib = 256;

    // Config space (struct virtio_balloon_config): num_pages u32, actual u32.
    public const int ConfigNumPages = 0;
    public const int ConfigActual = 4;
    public const int ConfigSize = 8;

    /// <summary>One stats entry: le16 tag, le64 val, packed (10 bytes).</summary>
    public const int StatEntrySize = 10;

    // Stat tags.
    public const ushort StatSwapIn = 0;
    public const ushort StatSwapOut = 1;
    public const ushort StatMajorFaults = 2;
    public const ushort StatMinorFaults = 3;
    public const ushort StatFreeMemory = 4;
    public const ushort StatTotalMemory = 5;
    public const ushort StatAvailableMemory = 6;
    public const ushort StatDiskCaches = 7;
    public const ushort StatHugetlbAllocations = 8;
    public const ushort StatHugetlbFailures = 9;
    public const int KnownStatCount = 10;
}
