namespace Flint.Devices.Acpi;

/// <summary>
/// struct vmclock_abi (Linux include/uapi/linux/vmclock-abi.h, version 1), the layout Firecracker's generated
/// vmclock_abi.rs binds: little-endian fields at these offsets, 112 bytes, at the start of the device's page.
/// </summary>
public static class VmClockAbi
{
    public const int Size = 112;
    public const uint Magic = 0x4B4C_4356;                 // "VCLK" little-endian (VMCLOCK_MAGIC = 1263289174)
    public const ushort Version = 1;

    public const int MagicOffset = 0, SizeOffset = 4, VersionOffset = 8, CounterIdOffset = 10, TimeTypeOffset = 11;
    public const int SeqCountOffset = 12, DisruptionMarkerOffset = 16, FlagsOffset = 24, ClockStatusOffset = 34;
    public const int VmGenerationCounterOffset = 104;

    public const byte CounterInvalid = 0xff;               // VMCLOCK_COUNTER_INVALID: no counter/time relation published
    public const byte StatusUnknown = 0;                   // VMCLOCK_STATUS_UNKNOWN
    public const ulong FlagVmGenCounterPresent = 1 << 8;   // VMCLOCK_FLAG_VM_GEN_COUNTER_PRESENT
    public const ulong FlagNotificationPresent = 1 << 9;   // VMCLOCK_FLAG_NOTIFICATION_PRESENT
}
