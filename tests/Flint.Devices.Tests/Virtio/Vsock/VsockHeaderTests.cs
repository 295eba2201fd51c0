using Flint.Devices.Virtio.Vsock;
using static Flint.Devices.Virtio.Vsock.VsockConstants;

namespace Flint.Devices.Tests.Virtio.Vsock;

/// <summary>The 44-byte packet header: wire layout, parse/write over spans, and the checks on guest packets.</summary>
public sealed class VsockHeaderTests
{
    private static readonly VsockHeader Sample = new(
        SrcCid: 0x0102030405060708, DstCid: 2, SrcPort: 0x11223344, DstPort: 0x55667788, Len: 0x99aabbcc,
        Type: TypeStream, Op: OpRw, Flags: 0xdeadbeef, BufAlloc: 0x00010000, FwdCnt: 0xfffffff0);

    [Fact]
    public void Write_then_read_round_trips()
    {
        var b = new byte[HeaderSize];
        Assert.True(Sample.TryWrite(b));
        Assert.True(VsockHeader.TryRead(b, out var h));
        Assert.Equal(Sample, h);
    }

    [Fact]
    public void Layout_is_the_specs_little_endian_packed_struct()
    {
        var b = new byte[HeaderSize];
        Sample.TryWrite(b);
        // The test guest's encoder is written independently of the codec: both must agree byte for byte.
        var expected = VsockGuest.Header(Sample.SrcCid, Sample.DstCid, Sample.SrcPort, Sample.DstPort, Sample.Len, Sample.Op,
            Sample.Flags, Sample.BufAlloc, Sample.FwdCnt, Sample.Type);
        Assert.Equal(expected, b);
        Assert.Equal(new byte[] { 8, 7, 6, 5, 4, 3, 2, 1 }, b[0..8]);
        Assert.Equal(new byte[] { 0x44, 0x33, 0x22, 0x11 }, b[16..20]);
        Assert.Equal(new byte[] { 5, 0 }, b[30..32]); // op
        Assert.Equal(new byte[] { 0xf0, 0xff, 0xff, 0xff }, b[40..44]);
    }

    [Fact]
    public void Parses_from_a_longer_buffer_and_ignores_what_follows()
    {
        var b = new byte[HeaderSize + 10];
        Sample.TryWrite(b);
        b.AsSpan(HeaderSize).Fill(0xee);
        Assert.True(VsockHeader.TryRead(b, out var h));
        Assert.Equal(Sample, h);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(20)]
    [InlineData(HeaderSize - 1)]
    public void Short_buffers_are_refused_both_ways(int size)
    {
        var b = new byte[size];
        Assert.False(VsockHeader.TryRead(b, out var h));
        Assert.Equal(default(VsockHeader), h);
        Assert.False(Sample.TryWrite(b));
        Assert.All(b, x => Assert.Equal(0, x));
    }

    [Fact]
    public void To_guest_fills_the_host_side()
    {
        var h = VsockHeader.ToGuest(guestCid: 9, srcPort: 1, dstPort: 2, OpCreditUpdate, len: 0, flags: 0, bufAlloc: 5, fwdCnt: 6);
        Assert.Equal((HostCid, 9UL, 1u, 2u, TypeStream, OpCreditUpdate, 5u, 6u),
            (h.SrcCid, h.DstCid, h.SrcPort, h.DstPort, h.Type, h.Op, h.BufAlloc, h.FwdCnt));
    }

    [Fact]
    public void Connection_key_is_our_port_then_the_guests()
    {
        var h = new VsockHeader(3, HostCid, SrcPort: 7, DstPort: 9, 0, TypeStream, OpRw, 0, 0, 0);
        Assert.Equal(VsockConnection.MakeKey(9, 7), h.ConnectionKey);
    }

    private static VsockHeader Guest(ushort op, uint len = 0, ulong src = 3, ulong dst = HostCid, ushort type = TypeStream) =>
        new(src, dst, 10, 20, len, type, op, 0, 65536, 0);

    [Fact]
    public void Valid_guest_packets()
    {
        for (ushort op = OpRequest; op <= OpCreditRequest; op++)
            Assert.Equal(VsockHeaderVerdict.Valid, Guest(op).Validate(3, 0));
        Assert.Equal(VsockHeaderVerdict.Valid, Guest(OpRw, len: 100).Validate(3, 100));
        Assert.Equal(VsockHeaderVerdict.Valid, Guest(OpRw, len: MaxTxPayload).Validate(3, MaxTxPayload));
        // Only RW carries a payload: another op's len is not checked against the chain.
        Assert.Equal(VsockHeaderVerdict.Valid, Guest(OpCreditUpdate, len: 1000).Validate(3, 0));
    }

    [Fact]
    public void Packets_not_from_our_guest_are_dropped()
    {
        Assert.Equal(VsockHeaderVerdict.Drop, Guest(OpRequest, src: 4).Validate(3, 0));
        Assert.Equal(VsockHeaderVerdict.Drop, Guest(OpRequest, src: HostCid).Validate(3, 0));
        // The source check comes first: a foreign packet is dropped however malformed the rest is.
        Assert.Equal(VsockHeaderVerdict.Drop, Guest(99, src: 0, dst: 7, type: 2).Validate(3, 0));
    }

    [Fact]
    public void Malformed_guest_packets_are_reset()
    {
        Assert.Equal(VsockHeaderVerdict.Reset, Guest(OpRequest, dst: 7).Validate(3, 0));
        Assert.Equal(VsockHeaderVerdict.Reset, Guest(OpRequest, dst: 3).Validate(3, 0)); // to itself
        Assert.Equal(VsockHeaderVerdict.Reset, Guest(OpRequest, type: 2).Validate(3, 0)); // SEQPACKET: not offered
        Assert.Equal(VsockHeaderVerdict.Reset, Guest(OpInvalid).Validate(3, 0));
        Assert.Equal(VsockHeaderVerdict.Reset, Guest(OpCreditRequest + 1).Validate(3, 0));
        Assert.Equal(VsockHeaderVerdict.Reset, Guest(ushort.MaxValue).Validate(3, 0));
    }

    [Fact]
    public void RW_len_beyond_the_descriptors_or_the_maximum_is_reset()
    {
        Assert.Equal(VsockHeaderVerdict.Reset, Guest(OpRw, len: 101).Validate(3, 100));
        Assert.Equal(VsockHeaderVerdict.Reset, Guest(OpRw, len: uint.MaxValue).Validate(3, 100));
        Assert.Equal(VsockHeaderVerdict.Reset, Guest(OpRw, len: 1).Validate(3, 0));
        Assert.Equal(VsockHeaderVerdict.Reset, Guest(OpRw, len: MaxTxPayload + 1).Validate(3, 1 << 20));
    }
}
