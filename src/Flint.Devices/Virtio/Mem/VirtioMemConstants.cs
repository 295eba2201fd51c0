namespace Flint.Devices.Virtio.Mem;

/// <summary>The virtio-mem wire format (virtio spec 5.15; Linux include/uapi/linux/virtio_mem.h).</summary>
public static class VirtioMemConstants
{
    /// <summary>Spec device id.</summary>
    public const uint DeviceId = VirtioDeviceType.Mem;

    /// <summary>VIRTIO_MEM_F_ACPI_PXM: node_id is meaningful (not offered).</summary>
    public const int FeatureAcpiPxm = 0;
    /// <summary>
    /// VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE: the driver promises never to touch unplugged memory. Required, as in
    /// Firecracker: unplugged slots are not mapped for the guest, so a driver that might read them must not run.
    /// </summary>
    public const int FeatureUnpluggedInaccessible = 1;

    // Requests: le16 type, 6 bytes padding, then (plug/unplug/state) le64 addr, le16 nb_blocks, 6 bytes padding.
    public const ushort ReqPlug = 0, ReqUnplug = 1, ReqUnplugAll = 2, ReqState = 3;
    public const int RequestSize = 24;
    public const int RequestAddrOffset = 8, RequestNbBlocksOffset = 16;

    // Responses: le16 type, 6 bytes padding, then (state) le16 state.
    public const ushort RespAck = 0, RespNack = 1, RespBusy = 2, RespError = 3;
    public const ushort StatePlugged = 0, StateUnplugged = 1, StateMixed = 2;
    public const int ResponseSize = 10;
    public const int ResponseStateOffset = 8;

    // Config space (struct virtio_mem_config), all little endian.
    public const int ConfigBlockSize = 0;        // le64
    public const int ConfigNodeId = 8;           // le16, then 6 bytes padding
    public const int ConfigAddr = 16;            // le64
    public const int ConfigRegionSize = 24;      // le64
    public const int ConfigUsableRegionSize = 32; // le64
    public const int ConfigPluggedSize = 40;     // le64
    public const int ConfigRequestedSize = 48;   // le64
    public const int ConfigSize = 56;

    /// <summary>Firecracker's defaults and minimums (VIRTIO_MEM_DEFAULT_BLOCK_SIZE_MIB, ..._SLOT_SIZE_MIB).</summary>
    public const uint DefaultBlockSizeMib = 2, DefaultSlotSizeMib = 128;

    public const ushort QueueSize = 256;
}
