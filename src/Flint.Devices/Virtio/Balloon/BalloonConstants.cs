namespace Flint.Devices.Virtio.Balloon;

/// <summary>virtio-balloon protocol numbers (spec 5.5).</summary>
public static class BalloonConstants
{
    public const int InflateQueue = 0;
    public const int DeflateQueue = 1;
    /// <summary>The stats queue's index when stats are enabled; the free page queues follow whichever came before
    /// (the Linux driver numbers only the queues whose features it negotiated, and so does Firecracker).</summary>
    public const int StatsQueue = 2;

    // Feature bits.
    public const int FeatureStatsVq = 1;
    public const int FeatureDeflateOnOom = 2;
    /// <summary>VIRTIO_BALLOON_F_FREE_PAGE_HINT: a host-started run in which the guest hints its free pages.</summary>
    public const int FeatureFreePageHint = 3;
    /// <summary>VIRTIO_BALLOON_F_REPORTING: the guest reports pages it has freed, unasked.</summary>
    public const int FeatureReporting = 5;

    // Free page hinting command ids (Linux VIRTIO_BALLOON_CMD_ID_STOP / _DONE); 2 and up name a run.
    public const uint HintCmdStop = 0;
    public const uint HintCmdDone = 1;
    public const uint HintCmdFirstRun = 2;

    /// <summary>PFNs are in 4 KiB units whatever the guest's page size.</summary>
    public const int PfnShift = 12;
    public const ulong PageSize = 1UL << PfnShift;
    public const uint PagesPerMib = 256;

    // Config space (struct virtio_balloon_config): num_pages u32, actual u32, free_page_hint_cmd_id u32 (12 bytes,
    // Firecracker's BALLOON_CONFIG_SPACE_SIZE, whatever features are offered).
    public const int ConfigNumPages = 0;
    public const int ConfigActual = 4;
    public const int ConfigFreePageHintCmdId = 8;
    public const int ConfigSize = 12;

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
