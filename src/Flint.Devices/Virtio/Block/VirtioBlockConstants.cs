namespace Flint.Devices.Virtio.Block;

/// <summary>virtio-blk protocol numbers (spec 5.2).</summary>
public static class VirtioBlockConstants
{
    public const int SectorShift = 9;
    public const ulong SectorSize = 1UL << SectorShift;

    /// <summary>Request header: type u32, reserved u32, sector u64.</summary>
    public const int HeaderSize = 16;

    /// <summary>GET_ID answers with a 20-byte, zero-padded serial.</summary>
    public const int IdBytes = 20;

    // Feature bits.
    public const int FeatureSegMax = 2;
    public const int FeatureReadOnly = 5;
    public const int FeatureFlush = 9;

    // Request types.
    public const uint RequestIn = 0;
    public const uint RequestOut = 1;
    public const uint RequestFlush = 4;
    public const uint RequestGetId = 8;

    // Status byte values.
    public const byte StatusOk = 0;
    public const byte StatusIoErr = 1;
    public const byte StatusUnsupported = 2;

    // Config space offsets (struct virtio_blk_config).
    public const int ConfigCapacity = 0;
    public const int ConfigSizeMax = 8;
    public const int ConfigSegMax = 12;
    public const int ConfigSize = 16;
}
