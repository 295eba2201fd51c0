using System.Buffers.Binary;
using Flint.Devices.Mmds;
using Flint.Devices.Mmds.Pdu;

namespace Flint.Devices.Tests.Mmds;

/// <summary>The typed packet views the MMDS stack reads and writes through: each writer's output reads back through its
/// reader, and each reader refuses what is too short or inconsistent before any field is used.</summary>
public sealed class PduTests
{
    private static readonly byte[] GuestMac = [0x02, 0, 0, 0, 0, 1];
    private const uint GuestIp = 0xC0A80002, MmdsIp = 0xA9FEA9FE;

    [Fact]
    public void An_ethernet_header_reads_back_and_a_short_frame_is_refused()
    {
        var buf = new byte[60];
        EthernetFrame.WriteHeader(buf, GuestMac, MmdsNetworkStack.DefaultMac, EthernetFrame.TypeArp);
        Assert.True(EthernetFrame.TryRead(buf, out var f));
        Assert.Equal(GuestMac, f.Destination.ToArray());
        Assert.Equal(MmdsNetworkStack.DefaultMac.ToArray(), f.Source.ToArray());
        Assert.Equal(EthernetFrame.TypeArp, f.EtherType);
        Assert.Equal(60 - EthernetFrame.HeaderLength, f.Payload.Length);
        Assert.False(EthernetFrame.TryRead(buf.AsSpan(0, 13), out _));
    }

    [Fact]
    public void An_arp_reply_reads_back_as_ipv4_over_ethernet()
    {
        var buf = new byte[ArpPacket.Length];
        ArpPacket.WriteReply(buf, MmdsNetworkStack.DefaultMac, MmdsIp, GuestMac, GuestIp);
        Assert.True(ArpPacket.TryRead(buf, out var arp));
        Assert.True(arp.IsIpv4OverEthernet);
        Assert.Equal(ArpPacket.OpReply, arp.Operation);
        Assert.Equal(MmdsIp, arp.SenderIp);
        Assert.Equal(GuestIp, arp.TargetIp);
        buf[5] = 16; // a 16-byte protocol address: not ours to answer
        Assert.True(ArpPacket.TryRead(buf, out arp));
        Assert.False(arp.IsIpv4OverEthernet);
        Assert.False(ArpPacket.TryRead(buf.AsSpan(0, 27), out _));
    }

    [Fact]
    public void An_ipv4_tcp_packet_written_here_validates_and_each_broken_header_is_classified()
    {
        var payload = "GET / HTTP/1.1\r\n\r\n"u8;
        int tcpLen = TcpSegment.LengthOf(true, payload.Length);
        var buf = new byte[Ipv4Packet.MinHeaderLength + tcpLen + 6]; // 6 bytes of link padding after the packet
        Ipv4Packet.WriteHeader(buf, Ipv4Packet.MinHeaderLength + tcpLen, 7, Ipv4Packet.ProtocolTcp, GuestIp, MmdsIp);
        TcpSegment.Write(buf.AsSpan(Ipv4Packet.MinHeaderLength), GuestIp, MmdsIp, 40000, 80, 1000, 2000,
            TcpSegment.Ack | TcpSegment.Psh, 512, payload, 1200);

        Assert.Equal(Ipv4Packet.Verdict.Ok, Ipv4Packet.Validate(buf, out var ip));
        Assert.Equal(GuestIp, ip.Source);
        Assert.Equal(MmdsIp, ip.Destination);
        Assert.Equal(tcpLen, ip.Payload.Length); // the padding is not part of the packet
        Assert.True(TcpSegment.TryRead(ip.Payload, ip.Source, ip.Destination, false, out var seg));
        Assert.Equal(40000, seg.SourcePort);
        Assert.Equal(80, seg.DestinationPort);
        Assert.Equal(1000u, seg.Sequence);
        Assert.Equal(2000u, seg.AckNumber);
        Assert.True(seg.HasFlag(TcpSegment.Psh) && seg.HasFlag(TcpSegment.Ack) && !seg.HasFlag(TcpSegment.Syn));
        Assert.Equal(512, seg.Window);
        Assert.Equal(1200, seg.MaxSegmentSize(1460));
        Assert.Equal(1000, seg.MaxSegmentSize(1000)); // clamped to what we can take
        Assert.Equal(payload.ToArray(), seg.Payload.ToArray());

        var bad = (byte[])buf.Clone();
        bad[8] ^= 1; // TTL changed, checksum not
        Assert.Equal(Ipv4Packet.Verdict.Malformed, Ipv4Packet.Validate(bad, out _));
        bad = (byte[])buf.Clone();
        BinaryPrimitives.WriteUInt16BigEndian(bad.AsSpan(2), (ushort)(buf.Length + 1)); // longer than the frame
        Assert.Equal(Ipv4Packet.Verdict.Malformed, Ipv4Packet.Validate(bad, out _));
        Assert.Equal(Ipv4Packet.Verdict.Malformed, Ipv4Packet.Validate(buf.AsSpan(0, 19), out _));

        var seg2 = buf.AsSpan(Ipv4Packet.MinHeaderLength, tcpLen).ToArray();
        seg2[^1] ^= 0xff; // payload changed, checksum not
        Assert.False(TcpSegment.TryRead(seg2, GuestIp, MmdsIp, false, out _));
        Assert.True(TcpSegment.TryRead(seg2, GuestIp, MmdsIp, checksumPartial: true, out _)); // left to the device
        seg2[12] = 0xf0; // data offset 60 > segment
        Assert.False(TcpSegment.TryRead(seg2.AsSpan(0, 40), GuestIp, MmdsIp, true, out _));
    }

    [Fact]
    public void Fragments_and_other_protocols_are_told_apart_from_malformed_headers()
    {
        var buf = new byte[40];
        Ipv4Packet.WriteHeader(buf, 40, 1, 17 /* UDP */, GuestIp, MmdsIp);
        Assert.Equal(Ipv4Packet.Verdict.NotTcp, Ipv4Packet.Validate(buf, out _));
        Ipv4Packet.WriteHeader(buf, 40, 1, Ipv4Packet.ProtocolTcp, GuestIp, MmdsIp);
        BinaryPrimitives.WriteUInt16BigEndian(buf.AsSpan(6), 0x2000); // more fragments
        buf[10] = buf[11] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(buf.AsSpan(10), PacketUtil.Checksum(buf.AsSpan(0, 20)));
        Assert.Equal(Ipv4Packet.Verdict.Fragment, Ipv4Packet.Validate(buf, out _));
    }

    [Fact]
    public void A_syn_without_options_gets_the_rfc_1122_default_mss()
    {
        var seg = new byte[TcpSegment.MinHeaderLength];
        TcpSegment.Write(seg, GuestIp, MmdsIp, 1, 80, 0, 0, TcpSegment.Syn, 100, default, null);
        Assert.True(TcpSegment.TryRead(seg, GuestIp, MmdsIp, false, out var s));
        Assert.Equal(TcpSegment.DefaultMss, s.MaxSegmentSize(1460));
    }
}
