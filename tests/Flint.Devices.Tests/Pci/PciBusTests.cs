using System.Buffers.Binary;
using Flint.Devices.Pci;

namespace Flint.Devices.Tests.Pci;

/// <summary>Configuration cycles through ECAM and the 0xCF8/0xCFC ports, and the hostile accesses they must survive.</summary>
public sealed class PciBusTests
{
    private readonly PciRootBus _bus = new();
    private readonly PciConfigMmio _ecam;
    private readonly PciConfigIo _io;

    public PciBusTests()
    {
        _ecam = new PciConfigMmio(_bus);
        _io = new PciConfigIo(_bus);
    }

    private static ulong Ecam(int dev, int fn, int reg) => ((ulong)dev << 15) | ((ulong)fn << 12) | (uint)reg;

    private uint Rd32(ulong offset)
    {
        Span<byte> b = stackalloc byte[4];
        _ecam.Read(offset, b);
        return BinaryPrimitives.ReadUInt32LittleEndian(b);
    }

    [Fact]
    public void HostBridgeAt_00_00_0_WithFirecrackersIdentity()
    {
        Assert.Equal(0x0d57_8086u, Rd32(Ecam(0, 0, 0)));
        Assert.Equal(0x06u, Rd32(Ecam(0, 0, 8)) >> 24); // class: bridge
        Assert.Equal(0x00u, (Rd32(Ecam(0, 0, 8)) >> 16) & 0xff); // subclass: host bridge
        Assert.Equal(0u, Rd32(Ecam(0, 0, 0xc)) & 0x7f_0000); // header type 0
    }

    [Fact]
    public void Empty_slots_other_functions_and_other_buses_read_all_ones()
    {
        Assert.Equal(0xffff_ffffu, Rd32(Ecam(1, 0, 0)));
        Assert.Equal(0xffff_ffffu, Rd32(Ecam(0, 1, 0)));
        Assert.Equal(0xffff_ffffu, Rd32(1UL << 20)); // bus 1 is past the 1 MiB window
        Assert.Equal(0xffff_ffffu, Rd32(Ecam(31, 7, 0xffc)));
    }

    [Theory]
    [InlineData(0, 3)]  // 3-byte access
    [InlineData(1, 4)]  // crosses a dword
    [InlineData(3, 2)]  // crosses a dword
    [InlineData(1, 2)]  // misaligned word
    [InlineData(0, 8)]  // wider than a register
    public void Odd_widths_read_all_ones_and_write_nothing(int offset, int length)
    {
        var data = new byte[length];
        _ecam.Read((ulong)offset, data);
        Assert.All(data, b => Assert.Equal(0xff, b));
        var before = Rd32(4);
        Array.Fill(data, (byte)0x5a);
        _ecam.Write(4 + (ulong)offset, data);
        Assert.Equal(before, Rd32(4));
    }

    [Fact]
    public void Read_only_header_fields_ignore_writes_command_takes_them()
    {
        Span<byte> v = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(v, 0x1234_5678);
        _ecam.Write(Ecam(0, 0, 0), v);       // vendor/device id
        _ecam.Write(Ecam(0, 0, 8), v);       // class/revision
        Assert.Equal(0x0d57_8086u, Rd32(Ecam(0, 0, 0)));
        BinaryPrimitives.WriteUInt16LittleEndian(v, 0x0006);
        _ecam.Write(Ecam(0, 0, 4), v[..2]);  // command: memory space + bus master
        Assert.Equal(0x0006u, Rd32(Ecam(0, 0, 4)) & 0xffff);
        _ecam.Write(Ecam(0, 0, 6), v[..2]);  // status is read-only
        Assert.Equal(0u, Rd32(Ecam(0, 0, 4)) >> 16);
    }

    [Fact]
    public void Sub_dword_reads_return_the_right_bytes()
    {
        Span<byte> b = stackalloc byte[2];
        _ecam.Read(2, b);
        Assert.Equal(0x0d57, BinaryPrimitives.ReadUInt16LittleEndian(b));
        Span<byte> one = stackalloc byte[1];
        _ecam.Read(0xb, one);
        Assert.Equal(0x06, one[0]);
    }

    [Fact]
    public void Port_0xCF8_mechanism_reaches_the_same_config_space()
    {
        Span<byte> b = stackalloc byte[4];
        _io.Read(4, b);
        Assert.Equal(0xffff_ffffu, BinaryPrimitives.ReadUInt32LittleEndian(b)); // not enabled yet
        BinaryPrimitives.WriteUInt32LittleEndian(b, 0x8000_0000); // bus 0, dev 0, fn 0, reg 0
        _io.Write(0, b);
        _io.Read(0, b);
        Assert.Equal(0x8000_0000u, BinaryPrimitives.ReadUInt32LittleEndian(b));
        _io.Read(4, b);
        Assert.Equal(0x0d57_8086u, BinaryPrimitives.ReadUInt32LittleEndian(b));
        Span<byte> two = stackalloc byte[2];
        _io.Read(6, two); // 0xCFE: upper half of the data dword
        Assert.Equal(0x0d57, BinaryPrimitives.ReadUInt16LittleEndian(two));
        BinaryPrimitives.WriteUInt32LittleEndian(b, 0x8000_0800); // device 1: empty
        _io.Write(0, b);
        _io.Read(4, b);
        Assert.Equal(0xffff_ffffu, BinaryPrimitives.ReadUInt32LittleEndian(b));
        Span<byte> odd = stackalloc byte[3];
        _io.Read(4, odd);
        Assert.Equal([0xff, 0xff, 0xff], odd.ToArray());
    }

    [Fact]
    public void Slots_fill_in_order_and_run_out()
    {
        var dev = new PciHostBridge();
        Assert.Equal(1, _bus.Add(dev));
        for (int i = 2; i < PciRootBus.SlotCount; i++) Assert.Equal(i, _bus.Add(new PciHostBridge()));
        Assert.Throws<PciSlotsExhaustedException>(() => _bus.Add(new PciHostBridge()));
    }
}
