using System.Runtime.InteropServices;

namespace Flint.Devices.Virtio;

/// <summary>
/// One split-virtqueue descriptor (spec 2.6.5): guest buffer address, length, flags, next index.
/// The layout matches the guest's table byte for byte (little-endian host), so a descriptor is read with one
/// 16-byte copy: the guest may rewrite the table under us, and a single copy is what gets validated and used.
/// </summary>
[StructLayout(LayoutKind.Sequential, Size = 16)]
public readonly struct Descriptor
{
    public const ushort FlagNext = 1;
    public const ushort FlagWrite = 2;
    public const ushort FlagIndirect = 4;

    public readonly ulong Addr;
    public readonly uint Len;
    public readonly ushort Flags;
    public readonly ushort Next;

    public Descriptor(ulong addr, uint len, ushort flags, ushort next)
    {
        Addr = addr;
        Len = len;
        Flags = flags;
        Next = next;
    }

    /// <summary>Device-writable (the guest reads what we put there); otherwise device-readable.</summary>
    public bool IsWriteOnly => (Flags & FlagWrite) != 0;

    public bool HasNext => (Flags & FlagNext) != 0;
}
