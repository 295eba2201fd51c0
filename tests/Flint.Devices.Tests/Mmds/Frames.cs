using System.Buffers.Binary;
using System.Text;
using Flint.Devices.Mmds;

namespace Flint.Devices.Tests.Mmds;

/// <summary>Hand-built Ethernet/ARP/IPv4/TCP frames as a guest would send them, and parsers for the replies.</summary>
public static class Frames
{
    public static readonly byte[] GuestMac = [0x06, 0, 0xac, 0x10, 0, 2];
    public const uint GuestIp = 0xac100002; // 172.16.0.2
    public static readonly uint MmdsIp = PacketUtil.ParseIpv4(MmdsNetworkStack.DefaultIpv4);

    public static byte[] Eth(byte[] dst, byte[] src, ushort type, ReadOnlySpan<byte> payload)
    {
        var f = new byte[14 + payload.Length];
        dst.CopyTo(f, 0);
        src.CopyTo(f, 6);
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(12), type);
        payload.CopyTo(f.AsSpan(14));
        return f;
    }

    public static byte[] ArpRequest(byte[] senderMac, uint senderIp, uint targetIp, ushort op = 1)
    {
        var a = new byte[28];
        BinaryPrimitives.WriteUInt16BigEndian(a, 1);
        BinaryPrimitives.WriteUInt16BigEndian(a.AsSpan(2), 0x0800);
        a[4] = 6; a[5] = 4;
        BinaryPrimitives.WriteUInt16BigEndian(a.AsSpan(6), op);
        senderMac.CopyTo(a, 8);
        BinaryPrimitives.WriteUInt32BigEndian(a.AsSpan(14), senderIp);
        BinaryPrimitives.WriteUInt32BigEndian(a.AsSpan(24), targetIp);
        return Eth([0xff, 0xff, 0xff, 0xff, 0xff, 0xff], senderMac, 0x0806, a);
    }

    public static byte[] Ipv4(uint src, uint dst, byte proto, ReadOnlySpan<byte> payload, byte[]? dstMac = null, byte[]? srcMac = null)
    {
        var ip = new byte[20 + payload.Length];
        ip[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(ip.AsSpan(2), (ushort)ip.Length);
        ip[8] = 64; ip[9] = proto;
        BinaryPrimitives.WriteUInt32BigEndian(ip.AsSpan(12), src);
        BinaryPrimitives.WriteUInt32BigEndian(ip.AsSpan(16), dst);
        BinaryPrimitives.WriteUInt16BigEndian(ip.AsSpan(10), PacketUtil.Checksum(ip.AsSpan(0, 20)));
        payload.CopyTo(ip.AsSpan(20));
        return Eth(dstMac ?? MmdsNetworkStack.DefaultMac.ToArray(), srcMac ?? GuestMac, 0x0800, ip);
    }

    public const byte Fin = 1, Syn = 2, Rst = 4, Psh = 8, Ack = 16;

    public static byte[] Tcp(ushort sport, uint seq, uint ack, byte flags, ReadOnlySpan<byte> data = default,
        ushort dport = 80, ushort window = 65535, uint src = GuestIp, uint? dst = null, bool mss = false)
    {
        uint d = dst ?? MmdsIp;
        int hl = mss ? 24 : 20;
        var t = new byte[hl + data.Length];
        BinaryPrimitives.WriteUInt16BigEndian(t, sport);
        BinaryPrimitives.WriteUInt16BigEndian(t.AsSpan(2), dport);
        BinaryPrimitives.WriteUInt32BigEndian(t.AsSpan(4), seq);
        BinaryPrimitives.WriteUInt32BigEndian(t.AsSpan(8), ack);
        t[12] = (byte)((hl / 4) << 4);
        t[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(t.AsSpan(14), window);
        if (mss) { t[20] = 2; t[21] = 4; BinaryPrimitives.WriteUInt16BigEndian(t.AsSpan(22), 1460); }
        data.CopyTo(t.AsSpan(hl));
        BinaryPrimitives.WriteUInt16BigEndian(t.AsSpan(16), PacketUtil.TransportChecksum(src, d, 6, t));
        return Ipv4(src, d, 6, t);
    }

    public sealed record TcpSeg(ushort SrcPort, ushort DstPort, uint Seq, uint Ack, byte Flags, ushort Window, byte[] Data);

    /// <summary>Parses a frame from the stack, checking its IPv4 and TCP checksums; null when it is not TCP.</summary>
    public static TcpSeg? ParseTcp(byte[] f)
    {
        if (f.Length < 54 || BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(12)) != 0x0800) return null;
        var ip = f.AsSpan(14);
        int ihl = (ip[0] & 15) * 4, total = BinaryPrimitives.ReadUInt16BigEndian(ip[2..]);
        Assert.Equal(0, PacketUtil.Checksum(ip[..ihl]));
        if (ip[9] != 6) return null;
        var t = ip[ihl..total];
        uint s = BinaryPrimitives.ReadUInt32BigEndian(ip[12..]), d = BinaryPrimitives.ReadUInt32BigEndian(ip[16..]);
        Assert.Equal(0, PacketUtil.TransportChecksum(s, d, 6, t));
        int doff = (t[12] >> 4) * 4;
        return new TcpSeg(BinaryPrimitives.ReadUInt16BigEndian(t), BinaryPrimitives.ReadUInt16BigEndian(t[2..]),
            BinaryPrimitives.ReadUInt32BigEndian(t[4..]), BinaryPrimitives.ReadUInt32BigEndian(t[8..]), t[13],
            BinaryPrimitives.ReadUInt16BigEndian(t[14..]), t[doff..].ToArray());
    }
}

/// <summary>
/// Plays a guest TCP client against the MMDS stack through an exchange function (frame in, frames out): the stack
/// directly in unit tests, the whole virtio-net device in device tests.
/// </summary>
public sealed class GuestTcp(Func<byte[], List<byte[]>> exchange, ushort port = 40000)
{
    public uint Seq = 1000;
    public uint Ack;
    public ushort Port = port;
    public ushort Window = 65535;

    public List<Frames.TcpSeg> Send(byte flags, ReadOnlySpan<byte> data = default)
    {
        var f = Frames.Tcp(Port, Seq, Ack, flags, data, window: Window, mss: (flags & Frames.Syn) != 0);
        Seq += (uint)data.Length + ((flags & (Frames.Syn | Frames.Fin)) != 0 ? 1u : 0);
        return exchange(f).Select(Frames.ParseTcp).Where(s => s != null).Select(s => s!).ToList();
    }

    public void Connect()
    {
        var r = Send(Frames.Syn);
        var synAck = Assert.Single(r);
        Assert.Equal(Frames.Syn | Frames.Ack, synAck.Flags);
        Assert.Equal(Seq, synAck.Ack);
        Ack = synAck.Seq + 1;
        Assert.Empty(Send(Frames.Ack));
    }

    /// <summary>Sends one request and collects the whole response (ACKing each data segment).</summary>
    public (int Status, string Head, string Body) Request(string req)
    {
        var segs = Send(Frames.Psh | Frames.Ack, Encoding.ASCII.GetBytes(req));
        var data = new List<byte>();
        for (int guard = 0; guard < 100; guard++)
        {
            bool any = false;
            foreach (var s in segs)
            {
                if (s.Seq == Ack && s.Data.Length > 0) { data.AddRange(s.Data); Ack += (uint)s.Data.Length; any = true; }
                if ((s.Flags & Frames.Fin) != 0) { Ack++; any = true; }
            }
            string text = Encoding.UTF8.GetString(data.ToArray());
            int he = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            if (he >= 0)
            {
                var head = text[..he];
                var cl = head.Split("\r\n").First(l => l.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase));
                int len = int.Parse(cl.Split(':')[1].Trim());
                if (Encoding.UTF8.GetByteCount(text[(he + 4)..]) >= len)
                {
                    if (any) Send(Frames.Ack);
                    return (int.Parse(head.Split(' ')[1]), head, text[(he + 4)..]);
                }
            }
            segs = any ? Send(Frames.Ack) : throw new Xunit.Sdk.XunitException("no progress: " + text);
        }
        throw new Xunit.Sdk.XunitException("response never completed");
    }
}
