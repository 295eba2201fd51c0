using System.Buffers.Binary;

namespace Flint.Devices.Pci;

/// <summary>
/// A type-0 configuration space (PCI Local Bus 3.0 ch. 6, PCIe extended to 4 KiB): the registers plus, per bit,
/// whether the guest may change it. Everything a guest writes goes through <see cref="Write"/>, which only ever
/// touches writable bits, so identity, class, capability pointers and capability bodies the VMM laid out cannot be
/// altered. BARs are not here: <see cref="PciBars"/> owns them (sizing needs more than a mask).
/// Not thread-safe: the owning device serialises access.
/// </summary>
public sealed partial class PciConfigSpace
{
    public const int RegisterCount = 1024;
    public const int CommandRegister = 1;
    public const int CapabilityPointerOffset = 0x34;
    public const int FirstCapabilityOffset = 0x40;
    /// <summary>Capabilities stay in the legacy 256-byte space (where the 0xCF8 mechanism can reach them too).</summary>
    public const int CapabilityEnd = 0x100;
    public const uint StatusCapabilitiesList = 1u << 20;

    private readonly uint[] _registers = new uint[RegisterCount];
    private readonly uint[] _writable = new uint[RegisterCount];
    private int _lastCapability = -1;
    private int _nextCapability = FirstCapabilityOffset;

    public PciConfigSpace(ushort vendorId, ushort deviceId, byte revision, byte classCode, byte subclass, byte progIf,
        ushort subsystemVendorId, ushort subsystemId)
    {
        _registers[0] = ((uint)deviceId << 16) | vendorId;
        _writable[CommandRegister] = 0x0000_ffff; // command r/w, status r/o
        _registers[2] = ((uint)classCode << 24) | ((uint)subclass << 16) | ((uint)progIf << 8) | revision;
        _writable[3] = 0x0000_00ff;              // cache line size
        _registers[11] = ((uint)subsystemId << 16) | subsystemVendorId;
        _writable[15] = 0x0000_00ff;             // interrupt line (a scratch byte for the OS; no INTx is wired)
    }

    public uint Read(int register) => (uint)register < RegisterCount ? _registers[register] : 0xffff_ffff;

    /// <summary>
    /// A guest write of 1, 2 or 4 bytes at <paramref name="offset"/> in <paramref name="register"/>; any other width,
    /// an access that crosses the register, or a register out of range is dropped.
    /// </summary>
    public void Write(int register, int offset, ReadOnlySpan<byte> data)
    {
        if ((uint)register >= RegisterCount || !AccessFits(offset, data.Length)) return;
        uint value = data.Length switch
        {
            1 => data[0],
            2 => BinaryPrimitives.ReadUInt16LittleEndian(data),
            _ => BinaryPrimitives.ReadUInt32LittleEndian(data),
        };
        uint lane = data.Length == 4 ? 0xffff_ffff : ((1u << (8 * data.Length)) - 1) << (8 * offset);
        uint mask = lane & _writable[register];
        _registers[register] = (_registers[register] & ~mask) | ((value << (8 * offset)) & mask);
    }

    /// <summary>Whether a 1/2/4-byte access at <paramref name="offset"/> stays inside one naturally aligned register.</summary>
    public static bool AccessFits(int offset, int length) =>
        length is 1 or 2 or 4 && (uint)offset < 4 && offset + length <= 4 && (offset % length) == 0;

    /// <summary>VMM-side write of a whole register, ignoring the writable mask (used while laying out capabilities).</summary>
    public void SetRegister(int register, uint value) => _registers[register] = value;

    /// <summary>Makes <paramref name="mask"/>'s bits of <paramref name="register"/> guest-writable.</summary>
    public void SetWritable(int register, uint mask) => _writable[register] = mask;

    /// <summary>
    /// Appends a capability (ID, next pointer, then <paramref name="body"/>) to the list, dword aligned, and returns
    /// its offset. Laid out once at build time by the VMM; a list that would not fit is a VMM bug and throws.
    /// </summary>
    public int AddCapability(byte id, ReadOnlySpan<byte> body)
    {
        int offset = _nextCapability;
        int length = 2 + body.Length;
        if (offset + length > CapabilityEnd) throw new InvalidOperationException($"PCI capability 0x{id:x2} does not fit in config space");
        SetByte(offset, id);
        SetByte(offset + 1, 0);
        for (int i = 0; i < body.Length; i++) SetByte(offset + 2 + i, body[i]);
        if (_lastCapability < 0) SetByte(CapabilityPointerOffset, (byte)offset);
        else SetByte(_lastCapability + 1, (byte)offset);
        _registers[CommandRegister] |= StatusCapabilitiesList;
        _lastCapability = offset;
        _nextCapability = (offset + length + 3) & ~3;
        return offset;
    }

    private void SetByte(int offset, byte value)
    {
        int reg = offset / 4, shift = 8 * (offset % 4);
        _registers[reg] = (_registers[reg] & ~(0xffu << shift)) | ((uint)value << shift);
    }

    /// <summary>The registers, for snapshots and tests.</summary>
    public ReadOnlySpan<uint> Registers => _registers;
}
