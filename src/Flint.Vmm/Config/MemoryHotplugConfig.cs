using System.Text.Json.Serialization;
using Flint.Devices.Virtio.Mem;

namespace Flint.Vmm.Config;

/// <summary>
/// PUT /hotplug/memory and the config file's "memory-hotplug" (Firecracker's MemoryHotplugConfig): the virtio-mem
/// area's size, block size and KVM slot size, all in MiB and all u32 (Firecracker #6076: a larger value is a parse
/// error, never a size wrapped to something small).
/// </summary>
public sealed class MemoryHotplugConfig
{
    [JsonPropertyName("total_size_mib"), JsonRequired] public uint TotalSizeMib { get; set; }
    [JsonPropertyName("block_size_mib")] public uint BlockSizeMib { get; set; } = VirtioMemConstants.DefaultBlockSizeMib;
    [JsonPropertyName("slot_size_mib")] public uint SlotSizeMib { get; set; } = VirtioMemConstants.DefaultSlotSizeMib;

    /// <summary>
    /// The largest area: Firecracker places it in the 512 GiB past the 64-bit MMIO window, and a VM whose area does
    /// not fit there fails to start.
    /// </summary>
    public const uint MaxTotalSizeMib = 512 * 1024;

    /// <summary>Firecracker's MemoryHotplugConfig::validate, its checks in its order and its texts; null when valid.</summary>
    public string? Error()
    {
        const uint minBlock = VirtioMemConstants.DefaultBlockSizeMib, minSlot = VirtioMemConstants.DefaultSlotSizeMib;
        if (BlockSizeMib < minBlock) return $"Block size must not be lower than {minBlock} MiB";
        if ((BlockSizeMib & (BlockSizeMib - 1)) != 0) return "Block size must be a power of 2";
        if (SlotSizeMib < minSlot) return $"Slot size must not be lower than {minSlot} MiB";
        if (SlotSizeMib % BlockSizeMib != 0) return $"Slot size must be a multiple of block size ({BlockSizeMib} MiB)";
        if (TotalSizeMib < SlotSizeMib) return $"Total size must not be lower than slot size ({SlotSizeMib} MiB)";
        if (TotalSizeMib % SlotSizeMib != 0) return $"Total size must be a multiple of slot size ({SlotSizeMib} MiB)";
        return null;
    }

    public string ToJson() =>
        $"{{\"total_size_mib\":{TotalSizeMib},\"block_size_mib\":{BlockSizeMib},\"slot_size_mib\":{SlotSizeMib}}}";
}
