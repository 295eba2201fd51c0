namespace Flint.Devices.Virtio.Mem;

/// <summary>GET /hotplug/memory: Firecracker's VirtioMemStatus, field for field, in its order.</summary>
public readonly record struct VirtioMemStatus(uint BlockSizeMib, uint TotalSizeMib, uint SlotSizeMib, uint PluggedSizeMib, uint RequestedSizeMib)
{
    public string ToJson() =>
        $"{{\"block_size_mib\":{BlockSizeMib},\"total_size_mib\":{TotalSizeMib},\"slot_size_mib\":{SlotSizeMib}," +
        $"\"plugged_size_mib\":{PluggedSizeMib},\"requested_size_mib\":{RequestedSizeMib}}}";
}
