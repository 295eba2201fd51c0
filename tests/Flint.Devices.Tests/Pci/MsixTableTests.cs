using System.Buffers.Binary;
using Flint.Devices.Pci.Msix;

namespace Flint.Devices.Tests.Pci;

/// <summary>MSI-X table, mask and PBA semantics (PCI 3.0 6.8.2) against a recording host.</summary>
public sealed class MsixTableTests
{
    private readonly FakeMsiVectors _host = new(3);
    private readonly MsixTable _t;

    public MsixTableTests() => _t = new MsixTable(_host);

    private void Wr(ulong off, uint v)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, v);
        _t.WriteTable(off, b);
    }

    private uint Rd(ulong off)
    {
        Span<byte> b = stackalloc byte[4];
        _t.ReadTable(off, b);
        return BinaryPrimitives.ReadUInt32LittleEndian(b);
    }

    private void Program(int v, uint data, bool masked)
    {
        Wr((ulong)v * 16, 0xfee0_0000);
        Wr((ulong)v * 16 + 4, 0);
        Wr((ulong)v * 16 + 8, data);
        Wr((ulong)v * 16 + 12, masked ? 1u : 0u);
    }

    private ulong Pba()
    {
        Span<byte> b = stackalloc byte[8];
        _t.ReadPba(0, b);
        return BinaryPrimitives.ReadUInt64LittleEndian(b);
    }

    [Fact]
    public void Entries_start_masked_and_nothing_is_delivered_before_enable()
    {
        for (int i = 0; i < 3; i++) Assert.Equal(1u, Rd((ulong)i * 16 + 12));
        Program(0, 0x41, masked: false);
        _t.Signal(0);
        Assert.Equal(0, _host.Triggers[0]);
        Assert.Equal(1UL, Pba());
        _t.SetControl(MsixCapability.EnableBit);
        // Enabling delivers what was pending, through the route the table holds.
        Assert.Equal(1, _host.Triggers[0]);
        Assert.Equal(new MsiMessage(0xfee0_0000, 0, 0x41), _host.Messages[0]);
        Assert.Equal(0UL, Pba());
    }

    [Fact]
    public void Masked_vector_sets_its_pending_bit_and_fires_on_unmask()
    {
        Program(1, 0x42, masked: true);
        _t.SetControl(MsixCapability.EnableBit);
        _t.Signal(1);
        Assert.Equal(0, _host.Triggers[1]);
        Assert.Equal(2UL, Pba());
        Assert.True(_t.IsPending(1));
        Wr(16 + 12, 0); // unmask
        Assert.Equal(1, _host.Triggers[1]);
        Assert.Equal(0UL, Pba());
        _t.Signal(1);
        Assert.Equal(2, _host.Triggers[1]);
    }

    [Fact]
    public void Function_mask_holds_every_vector()
    {
        Program(0, 0x41, false);
        Program(2, 0x43, false);
        _t.SetControl(MsixCapability.EnableBit | MsixCapability.FunctionMaskBit);
        _t.Signal(0);
        _t.Signal(2);
        Assert.Equal(0b101UL, Pba());
        Assert.Equal(0, _host.Triggers[0] + _host.Triggers[2]);
        _t.SetControl(MsixCapability.EnableBit);
        Assert.Equal(1, _host.Triggers[0]);
        Assert.Equal(1, _host.Triggers[2]);
        Assert.Equal(0UL, Pba());
    }

    [Fact]
    public void Disabling_takes_routes_down()
    {
        Program(0, 0x41, false);
        _t.SetControl(MsixCapability.EnableBit);
        Assert.True(_host.Enabled[0]);
        _t.SetControl(0);
        Assert.False(_host.Enabled[0]);
        _t.Signal(0);
        Assert.Equal(0, _host.Triggers[0]);
        Assert.True(_t.IsPending(0));
    }

    [Fact]
    public void Rewriting_an_unmasked_entry_reroutes_it()
    {
        Program(0, 0x41, false);
        _t.SetControl(MsixCapability.EnableBit);
        Wr(8, 0x55);
        Assert.Equal(0x55u, _host.Messages[0].Data);
        Span<byte> eight = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(eight, 0x0000_0001_fee0_1000);
        _t.WriteTable(0, eight); // 64-bit write of the address
        Assert.Equal(new MsiMessage(0xfee0_1000, 1, 0x55), _host.Messages[0]);
        _t.ReadTable(8, eight);
        Assert.Equal(0x55UL, BinaryPrimitives.ReadUInt64LittleEndian(eight)); // data + vector control 0
    }

    [Theory]
    [InlineData(0UL, 2)]     // word access
    [InlineData(2UL, 4)]     // misaligned dword
    [InlineData(4UL, 8)]     // misaligned qword
    [InlineData(48UL, 4)]    // entry 3: past the table
    [InlineData(0x3fff0UL, 4)]
    [InlineData(0UL, 1)]
    public void Bad_table_accesses_read_all_ones_and_write_nothing(ulong offset, int length)
    {
        var data = new byte[length];
        _t.ReadTable(offset, data);
        Assert.All(data, b => Assert.Equal(0xff, b));
        Array.Fill(data, (byte)0);
        _t.WriteTable(offset, data);
        for (int i = 0; i < 3; i++) Assert.Equal(1u, Rd((ulong)i * 16 + 12)); // still masked
        Assert.Equal(0, _host.RouteCalls);
    }

    [Fact]
    public void PBA_is_read_only_and_bounds_checked()
    {
        Program(0, 0x41, true);
        _t.SetControl(MsixCapability.EnableBit);
        _t.Signal(0);
        Span<byte> z = stackalloc byte[8];
        z.Clear();
        _t.WritePba(0, z);
        Assert.Equal(1UL, Pba());
        Span<byte> four = stackalloc byte[4];
        _t.ReadPba(8, four); // past the one PBA qword
        Assert.Equal(0xffff_ffffu, BinaryPrimitives.ReadUInt32LittleEndian(four));
        _t.ReadPba(4, four); // upper half of the qword
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(four));
    }

    [Fact]
    public void Signal_past_the_table_is_ignored()
    {
        _t.Signal(3);
        _t.Signal(-1);
        _t.Signal(0xffff);
        Assert.Equal(0UL, Pba());
    }

    [Fact]
    public void A_refused_route_keeps_the_vector_pending_instead_of_firing()
    {
        _host.RefuseRoutes = true;
        Program(0, 0x41, false);
        _t.SetControl(MsixCapability.EnableBit);
        _t.Signal(0);
        Assert.Equal(0, _host.Triggers[0]);
        Assert.True(_t.IsPending(0));
        Assert.True(_t.RouteFailures > 0);
    }
}
