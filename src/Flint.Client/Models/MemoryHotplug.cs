namespace Flint.Client.Models;

/// <summary>PUT /hotplug/memory: a virtio-mem device and its region (swagger <c>MemoryHotplugConfig</c>).</summary>
public sealed record MemoryHotplugConfig
{
    /// <summary>Total size of the hotpluggable region in MiB.</summary>
    public long? TotalSizeMib { get; init; }

    /// <summary>Slot size in MiB (host granularity); default 128.</summary>
    public long? SlotSizeMib { get; init; }

    /// <summary>Block size in MiB (guest granularity); default 2.</summary>
    public long? BlockSizeMib { get; init; }
}

/// <summary>PATCH /hotplug/memory: the size the guest should plug (swagger <c>MemoryHotplugSizeUpdate</c>).</summary>
public sealed record MemoryHotplugSizeUpdate
{
    /// <summary>The new requested size in MiB.</summary>
    public long? RequestedSizeMib { get; init; }
}

/// <summary>GET /hotplug/memory (swagger <c>MemoryHotplugStatus</c>).</summary>
public sealed record MemoryHotplugStatus
{
    /// <summary>Total size of the hotpluggable region in MiB.</summary>
    public long? TotalSizeMib { get; init; }

    /// <summary>Slot size in MiB.</summary>
    public long? SlotSizeMib { get; init; }

    /// <summary>Block size in MiB.</summary>
    public long? BlockSizeMib { get; init; }

    /// <summary>Size the guest has plugged, in MiB.</summary>
    public long? PluggedSizeMib { get; init; }

    /// <summary>Size last requested, in MiB.</summary>
    public long? RequestedSizeMib { get; init; }
}
