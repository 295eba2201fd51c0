using System.Buffers.Binary;
using System.Text;
using Flint.Devices.Mmds;

namespace Flint.Devices.Tests.Mmds;

public sealed class MmdsStackTests
{
    private long _now = 1_000_000;
    private readonly MmdsStore _store = new();

    public MmdsStackTests() =>
        _store.Put("""{"latest":{"meta-data":{"ami-id":"ami-12345678","reservation-id":"r-1"},"n":1}}""");

    private MmdsNetworkStack Stack(MmdsVersion v = MmdsVersion.V1) => new(_store, v, clockMs: () => _now);

    private static List<byte[]> Drain(MmdsNetworkStack s)
    {
        var list = new List<byte[]>();
        var buf = new byte[70000];
        while (s.HasFrameToSend)
        {
            int n = s.WriteNextFrame(buf);
            Assert.True(n > 0);
            list.Add(buf[..n]);
        }
        Assert.Equal(0, s.WriteNextFrame(buf));
        return list;
    }

    private static GuestTcp Client(MmdsNetworkStack s, ushort port = 40000) => new(f =>
    {
        Assert.True(s.DetourFrame(f));
        return Drain(s);
    }, port);

    [Fact]
    public void Answers_ARP_for_its_address_only()
    {
        var s = Stack();
        Assert.True(s.DetourFrame(Frames.ArpRequest(Frames.GuestMac, Frames.GuestIp, Frames.MmdsIp)));
        var r = Assert.Single(Drain(s));
        Assert.Equal(42, r.Length);
        Assert.Equal(Frames.GuestMac, r[..6]);
        Assert.Equal(MmdsNetworkStack.DefaultMac.ToArray(), r[6..12]);
        Assert.Equal(2, BinaryPrimitives.ReadUInt16BigEndian(r.AsSpan(20)));
        Assert.Equal(MmdsNetworkStack.DefaultMac.ToArray(), r[22..28]);
        Assert.Equal(Frames.MmdsIp, BinaryPrimitives.ReadUInt32BigEndian(r.AsSpan(28)));
        Assert.Equal(Frames.GuestIp, BinaryPrimitives.ReadUInt32BigEndian(r.AsSpan(38)));
        // Another address: not ours, goes to the tap.
        Assert.False(s.DetourFrame(Frames.ArpRequest(Frames.GuestMac, Frames.GuestIp, 0xac100001)));
        Assert.False(s.DetourFrame(Frames.Ipv4(Frames.GuestIp, 0x08080808, 6, new byte[20])));
        Assert.Empty(Drain(s));
    }

    [Fact]
    public void V1_GET_text_and_JSON()
    {
        var s = Stack();
        var c = Client(s);
        c.Connect();
        Assert.Equal(1, s.ConnectionCount);
        var (st, head, body) = c.Request("GET /latest/meta-data HTTP/1.1\r\nHost: x\r\n\r\n");
        Assert.Equal(200, st);
        Assert.Contains("Content-Type: text/plain", head);
        Assert.Equal("ami-id\nreservation-id", body);
        (st, head, body) = c.Request("GET /latest/meta-data/ami-id HTTP/1.1\r\nAccept: application/json\r\n\r\n");
        Assert.Equal(200, st);
        Assert.Contains("application/json", head);
        Assert.Equal("\"ami-12345678\"", body);
        // V1 ignores a bogus token.
        (st, _, body) = c.Request("GET /latest/meta-data/ami-id HTTP/1.1\r\nX-metadata-token: junk\r\n\r\n");
        Assert.Equal((200, "ami-12345678"), (st, body));
        Assert.Equal(404, c.Request("GET /latest/missing HTTP/1.1\r\n\r\n").Status);
        Assert.Equal(501, c.Request("GET /latest/n HTTP/1.1\r\n\r\n").Status);
        var (s405, h405, _) = c.Request("POST /latest HTTP/1.1\r\n\r\n");
        Assert.Equal(405, s405);
        Assert.Contains("Allow: GET, PUT", h405);
        Assert.Equal(400, c.Request("garbage\r\n\r\n").Status);
    }

    [Fact]
    public void V2_needs_token_and_honours_TTL()
    {
        var s = Stack(MmdsVersion.V2);
        var c = Client(s);
        c.Connect();
        Assert.Equal(401, c.Request("GET /latest/meta-data/ami-id HTTP/1.1\r\n\r\n").Status);
        Assert.Equal(401, c.Request("GET /latest/meta-data/ami-id HTTP/1.1\r\nX-metadata-token: abc\r\n\r\n").Status);
        Assert.Equal(400, c.Request("PUT /latest/api/token HTTP/1.1\r\n\r\n").Status);
        Assert.Equal(400, c.Request("PUT /latest/api/token HTTP/1.1\r\nX-metadata-token-ttl-seconds: 0\r\n\r\n").Status);
        Assert.Equal(400, c.Request("PUT /latest/api/token HTTP/1.1\r\nX-metadata-token-ttl-seconds: 21601\r\n\r\n").Status);
        Assert.Equal(400, c.Request("PUT /latest/api/token HTTP/1.1\r\nX-metadata-token-ttl-seconds: 10\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n").Status);
        Assert.Equal(404, c.Request("PUT /latest/other HTTP/1.1\r\nX-metadata-token-ttl-seconds: 10\r\n\r\n").Status);
        Assert.Equal(405, c.Request("DELETE /latest HTTP/1.1\r\n\r\n").Status);
        var (st, _, token) = c.Request("PUT /latest/api/token HTTP/1.1\r\nX-metadata-token-ttl-seconds: 10\r\n\r\n");
        Assert.Equal(200, st);
        Assert.NotEmpty(token);
        var (g, _, body) = c.Request($"GET /latest/meta-data/ami-id HTTP/1.1\r\nX-metadata-token: {token}\r\n\r\n");
        Assert.Equal((200, "ami-12345678"), (g, body));
        var (g2, _, _) = c.Request($"GET /latest HTTP/1.1\r\nX-aws-ec2-metadata-token: {token}\r\n\r\n");
        Assert.Equal(200, g2);
        // Tampered token.
        var bad = token[..^1] + (token[^1] == 'A' ? 'B' : 'A');
        Assert.Equal(401, c.Request($"GET /latest HTTP/1.1\r\nX-metadata-token: {bad}\r\n\r\n").Status);
        _now += 10_001;
        Assert.Equal(401, c.Request($"GET /latest HTTP/1.1\r\nX-metadata-token: {token}\r\n\r\n").Status);
        // A 21600 s token is fine.
        Assert.Equal(200, c.Request("PUT /latest/api/token HTTP/1.1\r\nX-metadata-token-ttl-seconds: 21600\r\n\r\n").Status);
    }

    [Fact]
    public void Large_response_is_segmented_by_MSS()
    {
        var big = new string('v', 5000);
        _store.Put("{\"k\":\"" + big + "\"}");
        var s = Stack();
        var c = Client(s);
        c.Connect(); // our SYN carried MSS 1460
        var (st, _, body) = c.Request("GET /k HTTP/1.1\r\n\r\n");
        Assert.Equal(200, st);
        Assert.Equal(big, body);
    }

    [Fact]
    public void Small_window_is_respected()
    {
        _store.Put("{\"k\":\"" + new string('w', 3000) + "\"}");
        var s = Stack();
        var c = Client(s);
        c.Connect();
        c.Window = 500;
        var segs = c.Send(Frames.Psh | Frames.Ack, Encoding.ASCII.GetBytes("GET /k HTTP/1.1\r\n\r\n"));
        Assert.Equal(500, Assert.Single(segs).Data.Length); // nothing beyond the window until it is acked
        var got = new List<byte>(segs[0].Data);
        c.Ack += 500;
        for (int i = 0; i < 20; i++)
        {
            var more = c.Send(Frames.Ack);
            if (more.Count == 0) break;
            foreach (var m in more)
            {
                Assert.True(m.Data.Length <= 500);
                got.AddRange(m.Data);
                c.Ack += (uint)m.Data.Length;
            }
        }
        Assert.EndsWith(new string('w', 3000), Encoding.ASCII.GetString(got.ToArray()));
    }

    [Fact]
    public void Unacknowledged_data_is_sent_again_after_the_timeout_then_the_connection_is_reset()
    {
        var s = Stack();
        var c = Client(s);
        c.Connect();
        Assert.Equal(0, s.NextRetransmitMs); // nothing in flight
        var first = c.Send(Frames.Psh | Frames.Ack, Encoding.ASCII.GetBytes("GET /latest/meta-data/ami-id HTTP/1.1\r\n\r\n"));
        var data = Assert.Single(first, x => x.Data.Length > 0);
        Assert.Equal(_now + MmdsNetworkStack.InitialRtoMs, s.NextRetransmitMs);

        // The guest "lost" it: nothing before the deadline, the same bytes at the same sequence number after it.
        _now += MmdsNetworkStack.InitialRtoMs - 1;
        s.OnRetransmitTimer();
        Assert.Empty(Drain(s));
        _now += 1;
        s.OnRetransmitTimer();
        var again = Assert.Single(Drain(s).Select(Frames.ParseTcp));
        Assert.Equal(data.Seq, again!.Seq);
        Assert.Equal(data.Data, again.Data);
        Assert.Equal(_now + 2 * MmdsNetworkStack.InitialRtoMs, s.NextRetransmitMs); // backed off

        // Acknowledged: nothing more in flight, no timer.
        c.Ack = data.Seq + (uint)data.Data.Length;
        Assert.Empty(c.Send(Frames.Ack));
        Assert.Equal(0, s.NextRetransmitMs);

        // A guest that never answers: the connection is reset after MaxRetransmits timeouts.
        c.Send(Frames.Psh | Frames.Ack, Encoding.ASCII.GetBytes("GET /latest/meta-data/ami-id HTTP/1.1\r\n\r\n"));
        for (int i = 0; i < MmdsNetworkStack.MaxRetransmits; i++)
        {
            _now = s.NextRetransmitMs;
            s.OnRetransmitTimer();
            Assert.Single(Drain(s));
        }
        _now = s.NextRetransmitMs;
        s.OnRetransmitTimer();
        var rst = Assert.Single(Drain(s).Select(Frames.ParseTcp));
        Assert.Equal(Frames.Rst | Frames.Ack, rst!.Flags);
        Assert.Equal(0, s.ConnectionCount);
        Assert.Equal(0, s.NextRetransmitMs);
    }

    [Fact]
    public void Unacknowledged_SYN_ACK_and_FIN_are_sent_again()
    {
        var s = Stack();
        var c = Client(s);
        var synAck = Assert.Single(c.Send(Frames.Syn));
        _now += MmdsNetworkStack.InitialRtoMs;
        s.OnRetransmitTimer();
        var again = Assert.Single(Drain(s).Select(Frames.ParseTcp));
        Assert.Equal((Frames.Syn | Frames.Ack, synAck.Seq), (again!.Flags, again.Seq));
        c.Ack = synAck.Seq + 1;
        Assert.Empty(c.Send(Frames.Ack));

        // The guest closes; our FIN (after its ACK) goes unacknowledged.
        var fin = Assert.Single(c.Send(Frames.Fin | Frames.Ack));
        Assert.NotEqual(0, fin.Flags & Frames.Fin);
        _now = s.NextRetransmitMs;
        s.OnRetransmitTimer();
        var fin2 = Assert.Single(Drain(s).Select(Frames.ParseTcp));
        Assert.Equal((fin.Flags, fin.Seq), (fin2!.Flags, fin2.Seq));
        c.Ack = fin.Seq + 1;
        Assert.Empty(c.Send(Frames.Ack));
        Assert.Equal(0, s.ConnectionCount);
    }

    [Fact]
    public void FIN_close_and_connection_close()
    {
        var s = Stack();
        var c = Client(s);
        c.Connect();
        var (st, head, _) = c.Request("GET /latest HTTP/1.1\r\nConnection: close\r\n\r\n");
        Assert.Equal(200, st);
        Assert.Contains("Connection: close", head);
        // Our FIN came with the response; the guest closes its side too.
        var r = c.Send(Frames.Fin | Frames.Ack);
        Assert.Single(r); // the ACK of its FIN
        Assert.Equal(0, s.ConnectionCount);
        Assert.Equal(1, s.Metrics.ConnectionsDestroyed);

        // Guest closes first.
        var c2 = Client(s, 40001);
        c2.Connect();
        var fin = c2.Send(Frames.Fin | Frames.Ack);
        var f = Assert.Single(fin);
        Assert.Equal(Frames.Fin | Frames.Ack, f.Flags);
        c2.Ack = f.Seq + 1;
        Assert.Empty(c2.Send(Frames.Ack));
        Assert.Equal(0, s.ConnectionCount);
    }

    [Fact]
    public void Unexpected_segments_get_RST()
    {
        var s = Stack();
        // ACK on no connection.
        Assert.True(s.DetourFrame(Frames.Tcp(5000, 1, 777, Frames.Ack)));
        var r = Assert.Single(Drain(s).Select(Frames.ParseTcp));
        Assert.Equal(Frames.Rst, r!.Flags);
        Assert.Equal(777u, r.Seq);
        // SYN to another port.
        Assert.True(s.DetourFrame(Frames.Tcp(5000, 10, 0, Frames.Syn, dport: 22)));
        r = Assert.Single(Drain(s).Select(Frames.ParseTcp));
        Assert.Equal(Frames.Rst | Frames.Ack, r!.Flags);
        Assert.Equal(11u, r.Ack);
        // RST from the guest removes the connection.
        var c = Client(s);
        c.Connect();
        Assert.Empty(c.Send(Frames.Rst));
        Assert.Equal(0, s.ConnectionCount);
    }

    [Fact]
    public void Connection_table_is_bounded()
    {
        var s = Stack();
        for (int i = 0; i < MmdsNetworkStack.MaxConnections; i++) Client(s, (ushort)(30000 + i)).Connect();
        Assert.Equal(MmdsNetworkStack.MaxConnections, s.ConnectionCount);
        var extra = Client(s, 39999).Send(Frames.Syn);
        Assert.Equal(Frames.Rst | Frames.Ack, Assert.Single(extra).Flags);
        Assert.Equal(MmdsNetworkStack.MaxConnections, s.ConnectionCount);
    }

    [Fact]
    public void Oversized_request_resets()
    {
        var s = Stack();
        var c = Client(s);
        c.Connect();
        List<Frames.TcpSeg> r = [];
        var chunk = Encoding.ASCII.GetBytes(new string('a', 1000));
        for (int i = 0; i < 5 && r.Count == 0; i++) r = c.Send(Frames.Ack, chunk).Where(x => (x.Flags & Frames.Rst) != 0).ToList();
        Assert.NotEmpty(r);
        Assert.Equal(0, s.ConnectionCount);
    }

    [Fact]
    public void Bad_checksums_and_truncated_frames_are_dropped()
    {
        var s = Stack();
        var f = Frames.Tcp(40000, 1, 0, Frames.Syn);
        f[^1] ^= 0xff; // TCP checksum now wrong (the last byte is covered)
        f[f.Length - 20 + 16] ^= 0x55;
        Assert.True(s.DetourFrame(f));
        Assert.Empty(Drain(s));
        Assert.True(s.Metrics.RxAcceptedErr > 0);
        // Partial checksum (offloaded): accepted without verification.
        Assert.True(s.DetourFrame(f, checksumPartial: true));
        Assert.Single(Drain(s));
        var g = Frames.Tcp(40001, 1, 0, Frames.Syn);
        g[14 + 10] ^= 1; // IPv4 header checksum
        Assert.True(s.DetourFrame(g));
        Assert.Empty(Drain(s));
        for (int len = 0; len < g.Length; len++) s.DetourFrame(g.AsSpan(0, len));
        var h = Frames.Tcp(40002, 1, 0, Frames.Syn);
        BinaryPrimitives.WriteUInt16BigEndian(h.AsSpan(16), 2000); // IPv4 total length beyond the frame
        Assert.True(s.DetourFrame(h));
        Assert.Empty(Drain(s));
        // UDP to MMDS: dropped, not forwarded.
        Assert.True(s.DetourFrame(Frames.Ipv4(Frames.GuestIp, Frames.MmdsIp, 17, new byte[8])));
        Assert.Empty(Drain(s));
    }

    [Fact]
    public void Random_frames_never_throw()
    {
        var s = Stack(MmdsVersion.V2);
        var rnd = new Random(1234);
        var buf = new byte[70000];
        var templates = new[] { Frames.Tcp(40000, 1, 0, Frames.Syn), Frames.ArpRequest(Frames.GuestMac, Frames.GuestIp, Frames.MmdsIp),
            Frames.Tcp(40000, 2, 5, Frames.Ack, Encoding.ASCII.GetBytes("GET / HTTP/1.1\r\n\r\n")) };
        for (int i = 0; i < 20000; i++)
        {
            byte[] f;
            if (rnd.Next(3) == 0) { f = new byte[rnd.Next(0, 200)]; rnd.NextBytes(f); }
            else
            {
                f = (byte[])templates[rnd.Next(templates.Length)].Clone();
                for (int k = rnd.Next(1, 4); k > 0; k--) f[rnd.Next(f.Length)] = (byte)rnd.Next(256);
                if (rnd.Next(4) == 0) f = f[..rnd.Next(f.Length)];
            }
            s.DetourFrame(f, rnd.Next(2) == 0);
            for (int k = 0; k < 4 && s.HasFrameToSend; k++) s.WriteNextFrame(buf);
        }
        while (s.HasFrameToSend) Assert.True(s.WriteNextFrame(buf) > 0);
    }
}
