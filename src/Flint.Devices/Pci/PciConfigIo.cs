using System.Buffers.Binary;

namespace Flint.Devices.Pci;

/// <summary>
/// PCI configuration mechanism #1 (ports 0xCF8-0xCFF), as Firecracker offers it on x86 beside ECAM: a 32-bit
/// CONFIG_ADDRESS at 0xCF8 (bit 31 enable, bus 23:16, device 15:11, function 10:8, register 7:2) and the data
/// window at 0xCFC-0xCFF. It reaches the first 256 bytes of config space. Bad widths read all ones, write nothing.
/// </summary>
public sealed class PciConfigIo(PciRootBus bus) : IBusDevice
{
    public const ushort BasePort = 0xcf8;
    public const ulong PortCount = 8;
    private const uint Enable = 0x8000_0000;

    private readonly Lock _lock = new();
    private uint _address;

    public void Read(ulong offset, Span<byte> data)
    {
        int within = (int)(offset & 3);
        if (offset >= PortCount || !PciConfigSpace.AccessFits(within, data.Length))
        {
            data.Fill(0xff);
            return;
        }
        uint v;
        lock (_lock) v = offset < 4 ? _address : ReadData();
        v >>= 8 * within;
        for (int i = 0; i < data.Length; i++) data[i] = (byte)(v >> (8 * i));
    }

    public void Write(ulong offset, ReadOnlySpan<byte> data)
    {
        int within = (int)(offset & 3);
        if (offset >= PortCount || !PciConfigSpace.AccessFits(within, data.Length)) return;
        lock (_lock)
        {
            if (offset < 4)
            {
                // Only a full dword write changes CONFIG_ADDRESS (byte writes to 0xCF8-0xCFB are other chipset registers).
                if (data.Length == 4) _address = BinaryPrimitives.ReadUInt32LittleEndian(data);
                return;
            }
            if ((_address & Enable) == 0) return;
            Decode(out int b, out int d, out int f, out int reg);
            bus.Write(b, d, f, reg, within, data);
        }
    }

    private uint ReadData()
    {
        if ((_address & Enable) == 0) return 0xffff_ffff;
        Decode(out int b, out int d, out int f, out int reg);
        return bus.Read(b, d, f, reg);
    }

    private void Decode(out int busNo, out int device, out int function, out int register)
    {
        busNo = (int)((_address >> 16) & 0xff);
        device = (int)((_address >> 11) & 0x1f);
        function = (int)((_address >> 8) & 0x7);
        register = (int)((_address >> 2) & 0x3f);
    }
}
