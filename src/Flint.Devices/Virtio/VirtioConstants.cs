namespace Flint.Devices.Virtio;

/// <summary>Device type ids from the virtio 1.x spec (section 5); the guest binds its driver by this number.</summary>
public static class VirtioDeviceType
{
    public const uint Net = 1;
    public const uint Block = 2;
    public const uint Rng = 4;
    public const uint Balloon = 5;
    public const uint Vsock = 19;
    public const uint Pmem = 27;
    public const uint Mem = 24;
}

/// <summary>Device-independent feature bits (spec 6). Devices OR in their own bits below 24.</summary>
public static class VirtioFeatures
{
    /// <summary>Modern (1.x) device: little-endian everything, no legacy layout. Every Flint device offers it.</summary>
    public const int Version1Bit = 32;
    public const ulong Version1 = 1UL << Version1Bit;

    /// <summary>Indirect descriptors: not offered, so a descriptor carrying the INDIRECT flag is a broken chain.</summary>
    public const int RingIndirectDescBit = 28;

    /// <summary>used_event/avail_event notification suppression (see <see cref="VirtQueue.EventIdx"/>): offered by
    /// virtio-net and virtio-blk, as Firecracker does; the other devices honour only the avail ring's NO_INTERRUPT flag.</summary>
    public const int RingEventIdxBit = 29;
    public const ulong RingEventIdx = 1UL << RingEventIdxBit;
}

/// <summary>The device status register bits (spec 2.1) the driver walks through during initialisation.</summary>
public static class VirtioStatus
{
    public const uint Acknowledge = 1;
    public const uint Driver = 2;
    public const uint DriverOk = 4;
    public const uint FeaturesOk = 8;
    /// <summary>Set by the device when it hit an error it cannot recover from without a reset (e.g. bad queue layout).</summary>
    public const uint DeviceNeedsReset = 0x40;
    public const uint Failed = 0x80;
}
