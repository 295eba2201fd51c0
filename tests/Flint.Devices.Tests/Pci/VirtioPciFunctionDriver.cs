using System.Buffers.Binary;
using Flint.Devices.Pci;
using Flint.Devices.Pci.Msix;
using Flint.Devices.Tests.Virtio;
using Flint.Devices.Virtio;
using Flint.Devices.Virtio.Pci;
using Flint.Memory;
using L = Flint.Devices.Virtio.Pci.VirtioPciLayout;
using S = Flint.Devices.Virtio.VirtioStatus;

namespace Flint.Devices.Tests.Pci;

/// <summary>
/// The guest side of one virtio-pci function for tests: configuration cycles through ECAM, BAR accesses, the
/// capability walk, MSI-X programming and the virtio-pci initialisation a kernel driver does (checked step by step),
/// for any device on the function with one queue.
/// </summary>
public sealed class VirtioPciFunctionDriver(PciRootBus bus, int slot, VirtioPciTransport transport, GuestMemory memory)
{
    public const ulong DevFeatSel = 0x00, DevFeat = 0x04, DrvFeatSel = 0x08, DrvFeat = 0x0c, MsixCfg = 0x10, NumQ = 0x12,
        Status = 0x14, QSel = 0x16, QSize = 0x18, QVec = 0x1a, QEnable = 0x1c, QNotifyOff = 0x1e, QDesc = 0x20, QDriver = 0x28, QDevice = 0x30;

    public PciConfigMmio Ecam { get; } = new(bus);

    // ---- config cycles ----
    public ulong Cfg(int reg) => ((ulong)slot << 15) | (uint)reg;
    public uint Cfg32(int reg) { Span<byte> b = stackalloc byte[4]; Ecam.Read(Cfg(reg), b); return BinaryPrimitives.ReadUInt32LittleEndian(b); }
    public byte Cfg8(int reg) { Span<byte> b = stackalloc byte[1]; Ecam.Read(Cfg(reg), b); return b[0]; }
    public void CfgW32(int reg, uint v) { Span<byte> b = stackalloc byte[4]; BinaryPrimitives.WriteUInt32LittleEndian(b, v); Ecam.Write(Cfg(reg), b); }
    public void CfgW16(int reg, ushort v) { Span<byte> b = stackalloc byte[2]; BinaryPrimitives.WriteUInt16LittleEndian(b, v); Ecam.Write(Cfg(reg), b); }

    // ---- BAR accesses ----
    public ulong Bar(ulong off, int len) { Span<byte> b = stackalloc byte[8]; b.Clear(); transport.Read(off, b[..len]); return BinaryPrimitives.ReadUInt64LittleEndian(b); }
    public void BarW(ulong off, ulong v, int len) { Span<byte> b = stackalloc byte[8]; BinaryPrimitives.WriteUInt64LittleEndian(b, v); transport.Write(off, b[..len]); }

    /// <summary>The capability list as (offset, id, virtio cfg_type or 0).</summary>
    public List<(int Offset, byte Id, byte Type)> WalkCapabilities()
    {
        var caps = new List<(int, byte, byte)>();
        Assert.NotEqual(0u, Cfg32(4) & (1u << 20)); // status: capabilities list
        int at = Cfg8(0x34);
        for (int guard = 0; at != 0 && guard < 48; guard++)
        {
            Assert.Equal(0, at & 3);
            byte id = Cfg8(at);
            caps.Add((at, id, id == 0x09 ? Cfg8(at + 3) : (byte)0));
            at = Cfg8(at + 1);
        }
        return caps;
    }

    public int MsixCap => WalkCapabilities()[^1].Offset;

    /// <summary>Entry v sends data 0x40 + v to the LAPIC, unmasked; then MSI-X is enabled.</summary>
    public void ProgramMsix()
    {
        for (int v = 0; v < 2; v++)
        {
            ulong e = L.MsixTableOffset + (ulong)v * 16;
            BarW(e, 0xfee0_0000, 4);
            BarW(e + 4, 0, 4);
            BarW(e + 8, 0x40u + (uint)v, 4);
            BarW(e + 12, 0, 4);
        }
        CfgW16(MsixCap + 2, MsixCapability.EnableBit);
        Assert.True(transport.Msix.Enabled);
    }

    /// <summary>
    /// A driver's initialisation up to DRIVER_OK: MSI-X programmed, the features offered accepted (within
    /// <paramref name="acceptMask"/>), config changes on vector 1, queue 0 (size 16) on vector 0.
    /// </summary>
    public GuestDriver Init(ulong acceptMask = ulong.MaxValue)
    {
        ProgramMsix();
        BarW(Status, 0, 1);
        BarW(Status, S.Acknowledge, 1);
        BarW(Status, S.Acknowledge | S.Driver, 1);
        BarW(DevFeatSel, 0, 4);
        ulong features = Bar(DevFeat, 4);
        BarW(DevFeatSel, 1, 4);
        features |= Bar(DevFeat, 4) << 32;
        Assert.NotEqual(0UL, features & VirtioFeatures.Version1);
        features &= acceptMask | VirtioFeatures.Version1;
        BarW(DrvFeatSel, 0, 4); BarW(DrvFeat, (uint)features, 4);
        BarW(DrvFeatSel, 1, 4); BarW(DrvFeat, features >> 32, 4);
        BarW(Status, S.Acknowledge | S.Driver | S.FeaturesOk, 1);
        Assert.NotEqual(0UL, Bar(Status, 1) & S.FeaturesOk);
        BarW(MsixCfg, 1, 2);
        Assert.Equal(1UL, Bar(MsixCfg, 2));
        Assert.Equal(1UL, Bar(NumQ, 2));
        var drv = new GuestDriver(memory, 16);
        BarW(QSel, 0, 2);
        Assert.Equal(256UL, Bar(QSize, 2)); // max size until the driver writes its own
        Assert.Equal(0UL, Bar(QNotifyOff, 2));
        BarW(QSize, drv.Size, 2);
        BarW(QDesc, drv.Desc, 8);             // one 64-bit write
        BarW(QDriver, drv.Avail, 4);          // or two dwords
        BarW(QDriver + 4, 0, 4);
        BarW(QDevice, drv.UsedRing, 4);
        BarW(QDevice + 4, 0, 4);
        BarW(QVec, 0, 2);
        Assert.Equal(0UL, Bar(QVec, 2));
        BarW(QEnable, 1, 2);
        Assert.Equal(1UL, Bar(QEnable, 2));
        BarW(Status, S.Acknowledge | S.Driver | S.FeaturesOk | S.DriverOk, 1);
        Assert.True(transport.IsActivated);
        return drv;
    }
}
