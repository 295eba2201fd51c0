using System.Buffers.Binary;
using Flint.Devices.Pci;

namespace Flint.Devices.Virtio.Pci;

/// <summary>
/// The VIRTIO_PCI_CAP_PCI_CFG window (spec 4.1.4.9): a driver that cannot map the BAR sets bar/offset/length in the
/// capability and reads or writes pci_cfg_data to reach the BAR through config cycles. Everything in it is the
/// guest's: the access is made only for BAR 0, a length of 1, 2 or 4, an offset aligned to that length and inside
/// the BAR; otherwise the data reads as zero and a write does nothing.
/// </summary>
public sealed partial class VirtioPciTransport
{
    private int PciCfgDataRegister => _pciCfgCapOffset / 4 + 4;

    private bool WindowTarget(out ulong offset, out int length)
    {
        int reg = _pciCfgCapOffset / 4;
        byte bar = (byte)_config.Read(reg + 1);
        offset = _config.Read(reg + 2);
        uint len = _config.Read(reg + 3);
        length = (int)len;
        return bar == VirtioPciLayout.Bar && len is 1 or 2 or 4 && offset % len == 0 && offset + len <= VirtioPciLayout.BarSize;
    }

    private uint ReadPciCfgWindow()
    {
        if (!WindowTarget(out ulong offset, out int length)) return 0;
        Span<byte> buf = stackalloc byte[4];
        buf.Clear();
        Read(offset, buf[..length]);
        return BinaryPrimitives.ReadUInt32LittleEndian(buf);
    }

    private void WritePciCfgWindow(int offset, ReadOnlySpan<byte> data)
    {
        // The data lands at the start of pci_cfg_data and must be as wide as the window's length.
        if (offset != 0 || !WindowTarget(out ulong target, out int length) || data.Length != length) return;
        Write(target, data);
    }
}
