namespace Flint.Devices.Pci;

/// <summary>
/// The PCIe enhanced configuration access mechanism (ECAM, "MMCONFIG"; PCIe base spec 7.2.2): one 4 KiB page per
/// function, address bits 27:20 bus, 19:15 device, 14:12 function, 11:0 register byte. Accesses of 1, 2 or 4 bytes
/// inside one dword are forwarded; anything else reads all ones and writes nothing.
/// </summary>
public sealed class PciConfigMmio(PciRootBus bus) : IBusDevice
{
    public void Read(ulong offset, Span<byte> data)
    {
        int within = (int)(offset & 3);
        if (offset >= PciEcamWindow.SizePerSegment || !PciConfigSpace.AccessFits(within, data.Length))
        {
            data.Fill(0xff);
            return;
        }
        Decode(offset, out int b, out int d, out int f, out int reg);
        uint v = bus.Read(b, d, f, reg) >> (8 * within);
        for (int i = 0; i < data.Length; i++) data[i] = (byte)(v >> (8 * i));
    }

    public void Write(ulong offset, ReadOnlySpan<byte> data)
    {
        if (offset >= PciEcamWindow.SizePerSegment) return;
        Decode(offset, out int b, out int d, out int f, out int reg);
        bus.Write(b, d, f, reg, (int)(offset & 3), data);
    }

    private static void Decode(ulong offset, out int busNo, out int device, out int function, out int register)
    {
        busNo = (int)((offset >> 20) & 0xff);
        device = (int)((offset >> 15) & 0x1f);
        function = (int)((offset >> 12) & 0x7);
        register = (int)((offset >> 2) & 0x3ff);
    }
}
