using System.Buffers.Binary;
using Flint.Devices.Mmds;

namespace Flint.Fuzz;

/// <summary>Ethernet / ARP / IPv4 / TCP frames as a guest sends them to MMDS, for the seed corpora.</summary>
public static class FrameBuilder
{
    public static readonly byte[] GuestMac = [0x06, 0, 0xac, 0x10, 0, 2];
    public const uint GuestIp = 0xac100002; // 172.16.0.2
    public static readonly uint MmdsIp = PacketUtil.ParseIpv4(MmdsNetworkStack.DefaultIpv4);
    public const byte Fin = 1, Syn = 2, Rst = 4, Psh = 8, Ack = 16;

    public static byte[] Eth(ReadOnlySpan<byte> dst, ushort type, ReadOnlySpan<byte> payload)
    {
        var f = new byte[14 + payload.Length];
        dst.CopyTo(f);
        GuestMac.CopyTo(f, 6);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(12), type);
        payload.CopyTo(f.AsSpan(14));
        return f;
    }

    public static byte[] ArpRequest(uint targetIp)
    {
        var a = new byte[28];
        BinaryPrimitives.WriteUInt16BigEndian(a, 1);
        BinaryPrimitives.WriteUInt16BigEndian(a.AsSpan(2), 0x0800);
        a[4] = 6; a[5] = 4;
        BinaryPrimitives.WriteUInt16BigEndian(a.AsSpan(6), 1);
        GuestMac.CopyTo(a, 8);
        BinaryPrimitives.WriteUInt32BigEndian(a.AsSpan(14), GuestIp);
        BinaryPrimitives.WriteUInt32BigEndian(a.AsSpan(24), targetIp);
        return Eth([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], 0x0806, a);
    }

    public static byte[] Tcp(ushort sport, uint seq, uint ack, byte flags, ReadOnlySpan<byte> data = default, bool mss = false)
    {
        int hl = mss ? 24 : 20;
        var t = new byte[hl + data.Length];
        BinaryPrimitives.WriteUInt16BigEndian(t, sport);
        BinaryPrimitives.WriteUInt16BigEndian(t.AsSpan(2), MmdsNetworkStack.HttpPort);
        BinaryPrimitives.WriteUInt32BigEndian(t.AsSpan(4), seq);
        BinaryPrimitives.WriteUInt32BigEndian(t.AsSpan(8), ack);
        t[12] = (byte)((hl / 4) << 4);
        t[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(t.AsSpan(14), 65535);
        if (mss) { t[20] = 2; t[21] = 4; BinaryPrimitives.WriteUInt16BigEndian(t.AsSpan(22), 1460); }
        data.CopyTo(t.AsSpan(hl));
        BinaryPrimitives.WriteUInt16BigEndian(t.AsSpan(16), PacketUtil.TransportChecksum(GuestIp, MmdsIp, PacketUtil.ProtoTcp, t));
        var ip = new byte[20 + t.Length];
        ip[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(ip.AsSpan(2), (ushort)ip.Length);
        ip[8] = 64; ip[9] = PacketUtil.ProtoTcp;
        BinaryPrimitives.WriteUInt32BigEndian(ip.AsSpan(12), GuestIp);
        BinaryPrimitives.WriteUInt32BigEndian(ip.AsSpan(16), MmdsIp);
        BinaryPrimitives.WriteUInt16BigEndian(ip.AsSpan(10), PacketUtil.Checksum(ip.AsSpan(0, 20)));
        t.CopyTo(ip, 20);
        return Eth(MmdsNetworkStack.DefaultMac, PacketUtil.EtherTypeIpv4, ip);
    }

    /// <summary>A guest's whole exchange with MMDS: ARP, SYN, ACK, a GET, then FIN (acks left 0: the target fills them in).</summary>
    public static List<byte[]> Conversation(string request, ushort port = 40000)
    {
        var req = System.Text.Encoding.ASCII.GetBytes(request);
        uint seq = 1000;
        return
        [
            ArpRequest(MmdsIp),
            Tcp(port, seq, 0, Syn, mss: true),
            Tcp(port, seq + 1, 0, Ack),
            Tcp(port, seq + 1, 0, Ack | Psh, req),
            Tcp(port, seq + 1 + (uint)req.Length, 0, Ack),
            Tcp(port, seq + 1 + (uint)req.Length, 0, Ack | Fin),
            Tcp(port, seq + 2 + (uint)req.Length, 0, Ack),
        ];
    }
}
