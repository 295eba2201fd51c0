using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using Flint.Devices.Virtio;
using Flint.Devices.Virtio.Vsock;
using Xunit.Abstractions;
using static Flint.Devices.Virtio.Vsock.VsockConstants;

namespace Flint.Devices.Tests.Virtio.Vsock;

public sealed class VirtioVsockTests(ITestOutputHelper output) : IDisposable
{
    private readonly VsockHarness _h = new();

    public void Dispose() => _h.Dispose();

    [Fact]
    public void Identity_features_and_config()
    {
        Assert.Equal(19u, _h.Device.DeviceType);
        Assert.Equal(VirtioFeatures.Version1, _h.Device.AvailableFeatures);
        Assert.Equal(new ushort[] { 256, 256, 256 }, _h.Device.QueueMaxSizes.ToArray());
        Span<byte> cfg = stackalloc byte[8];
        _h.Device.ReadConfig(0, cfg);
        Assert.Equal(3UL, BitConverter.ToUInt64(cfg));
        Span<byte> four = stackalloc byte[4];
        _h.Device.ReadConfig(4, four);
        Assert.Equal(0u, BitConverter.ToUInt32(four));
        _h.Device.WriteConfig(0, new byte[8]);
        Assert.Equal(1, _h.Device.Metrics.CfgFails);
        Assert.True(File.Exists(_h.UdsPath) || Directory.Exists(Path.GetDirectoryName(_h.UdsPath)));
        var names = _h.Device.Metrics.Snapshot().Select(x => x.Name).ToArray();
        Assert.Contains("conns_added", names);
        Assert.Contains("rx_read_fails", names);
        Assert.Equal(20, names.Length);
    }

    [Fact]
    public void Stale_socket_file_is_replaced_and_dispose_unlinks()
    {
        string path = Path.Combine(_h.Dir, "stale.sock");
        File.WriteAllText(path, "stale");
        var loop = new TestLoop();
        var dev = new VirtioVsock(5, path, loop);
        using (var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
            s.Connect(new UnixDomainSocketEndPoint(path));
        dev.Dispose();
        Assert.False(File.Exists(path));
        loop.Dispose();
        Assert.Throws<ArgumentOutOfRangeException>(() => new VirtioVsock(2, path, loop));
    }

    [Fact]
    public void Host_initiated_handshake_and_data_both_ways()
    {
        var (host, hostPort) = _h.OpenHostInitiated(52);
        using var _ = host;
        host.Send("hello guest"u8.ToArray());
        var p = _h.Guest.RecvWhere(x => x.Op == OpRw);
        Assert.Equal(hostPort, p.SrcPort);
        Assert.Equal(52u, p.DstPort);
        Assert.Equal("hello guest", Encoding.ASCII.GetString(p.Payload));
        Assert.Equal(ConnBufAlloc, p.BufAlloc);

        _h.Guest.Send(52, hostPort, OpRw, "hello host"u8.ToArray());
        Assert.Equal("hello host", Encoding.ASCII.GetString(VsockHarness.ReadExactly(host, 10)));

        // Bigger than one rx buffer: split over several RW packets, order kept.
        var big = new byte[20000];
        new Random(1).NextBytes(big);
        host.Send(big);
        Assert.Equal(big, _h.GuestReadData(52, big.Length));
        Assert.Equal(1, _h.Device.Metrics.ConnsAdded);
        Assert.Equal(11 + 20000, _h.Device.Metrics.RxBytesCount);
        Assert.Equal(10, _h.Device.Metrics.TxBytesCount);
        Assert.True(_h.Line.Count > 0);
        _h.AssertHealthy();
    }

    [Fact]
    public void Data_right_after_connect_line_is_not_lost()
    {
        var s = _h.ConnectHost();
        s.Send(Encoding.ASCII.GetBytes("CONNECT 77\nearly-bytes"));
        var req = _h.Guest.RecvWhere(p => p.Op == OpRequest);
        Assert.Equal(77u, req.DstPort);
        _h.Guest.Send(77, req.SrcPort, OpResponse);
        Assert.Equal($"OK {req.SrcPort}", VsockHarness.ReadLine(s));
        Assert.Equal("early-bytes", Encoding.ASCII.GetString(_h.GuestReadData(77, 11)));
        s.Dispose();
    }

    [Fact]
    public void Bad_connect_line_closes_host_socket()
    {
        using var s = _h.ConnectHost();
        s.Send("HELLO 5\n"u8.ToArray());
        Assert.True(VsockHarness.WaitClosed(s));
        using var t = _h.ConnectHost();
        t.Send(Encoding.ASCII.GetBytes("CONNECT " + new string('9', 40)));
        Assert.True(VsockHarness.WaitClosed(t));
        Assert.Null(_h.Guest.RecvNone(100));
        _h.AssertHealthy();
    }

    [Fact]
    public void Guest_RST_to_request_closes_host_without_OK()
    {
        using var s = _h.ConnectHost();
        s.Send("CONNECT 9\n"u8.ToArray());
        var req = _h.Guest.RecvWhere(p => p.Op == OpRequest);
        _h.Guest.Send(9, req.SrcPort, OpRst);
        Assert.True(VsockHarness.WaitClosed(s));
        Assert.Equal(0, _h.Device.ConnectionCount);
    }

    [Fact]
    public void Unanswered_request_times_out_with_RST()
    {
        using var s = _h.ConnectHost();
        s.Send("CONNECT 10\n"u8.ToArray());
        var req = _h.Guest.RecvWhere(p => p.Op == OpRequest);
        var rst = _h.Guest.RecvWhere(p => p.Op == OpRst, timeoutMs: 3000);
        Assert.Equal(req.SrcPort, rst.SrcPort);
        Assert.True(VsockHarness.WaitClosed(s));
    }

    [Fact]
    public void Guest_initiated_connect_and_data()
    {
        using var listener = _h.ListenGuestPort(5000);
        using var host = _h.OpenGuestInitiated(listener, 7000, 5000);
        _h.Guest.Send(7000, 5000, OpRw, "ping"u8.ToArray());
        Assert.Equal("ping", Encoding.ASCII.GetString(VsockHarness.ReadExactly(host, 4)));
        host.Send("pong"u8.ToArray());
        var p = _h.Guest.RecvWhere(x => x.Op == OpRw);
        Assert.Equal((5000u, 7000u), (p.SrcPort, p.DstPort));
        Assert.Equal("pong", Encoding.ASCII.GetString(p.Payload));
        _h.AssertHealthy();
    }

    [Fact]
    public void Host_connect_skips_an_ephemeral_port_a_guest_connection_uses()
    {
        // The guest may connect to any host port, the ephemeral range included. A host client then connecting to the
        // same guest port must get another local port: the pair (port, guest port) would name two connections. This
        // used to throw inside the handler (duplicate key), leaving the client without a REQUEST and its fd in no table.
        using var listener = _h.ListenGuestPort(FirstEphemeralPort);
        using var guestSide = _h.OpenGuestInitiated(listener, 60, FirstEphemeralPort);
        var (host, hostPort) = _h.OpenHostInitiated(60);
        using var _ = host;
        Assert.NotEqual(FirstEphemeralPort, hostPort);
        host.Send("via host"u8.ToArray());
        var p = _h.Guest.RecvWhere(x => x.Op == OpRw);
        Assert.Equal((hostPort, "via host"), (p.SrcPort, Encoding.ASCII.GetString(p.Payload)));
        guestSide.Send("via guest"u8.ToArray());
        p = _h.Guest.RecvWhere(x => x.Op == OpRw);
        Assert.Equal((FirstEphemeralPort, "via guest"), (p.SrcPort, Encoding.ASCII.GetString(p.Payload)));
        Assert.Equal(2, _h.Device.ConnectionCount);
        _h.AssertHealthy();
    }

    [Fact]
    public void Guest_connect_refused_when_nothing_listens()
    {
        _h.Guest.Send(7001, 5001, OpRequest);
        var p = _h.Guest.Recv();
        Assert.Equal(OpRst, p.Op);
        Assert.Equal((5001u, 7001u), (p.SrcPort, p.DstPort));
        Assert.Equal(0, _h.Device.ConnectionCount);
    }

    [Fact]
    public void Guest_credit_limits_what_the_device_sends()
    {
        using var listener = _h.ListenGuestPort(5002);
        using var host = _h.OpenGuestInitiated(listener, 7002, 5002, guestBufAlloc: 1000);
        var data = new byte[5000];
        new Random(2).NextBytes(data);
        host.Send(data);
        var first = _h.GuestReadData(7002, 1000);
        Assert.Equal(1000, first.Length); // exactly the credit, never more
        // Out of credit: the device asks for an update and sends no data until it gets one.
        var others = new List<VsockPacket>();
        var creq = _h.Guest.RecvWhere(p => p.Op == OpCreditRequest, others);
        Assert.DoesNotContain(others, p => p.Op == OpRw);
        var none = _h.Guest.RecvNone(200);
        Assert.True(none == null || none.Op != OpRw, $"unexpected {none}");
        long dispatchesBefore = Interlocked.Read(ref _h.Loop.Dispatches);
        Thread.Sleep(200);
        Assert.True(Interlocked.Read(ref _h.Loop.Dispatches) - dispatchesBefore < 10, "device busy-loops while out of credit");

        // Guest consumed the 1000 and now has a 2000-byte buffer: exactly 2000 more may come.
        _h.Guest.Send(7002, 5002, OpCreditUpdate, bufAlloc: 2000, fwdCnt: 1000);
        var second = _h.GuestReadData(7002, 2000);
        Assert.Equal(2000, second.Length);
        Assert.Null(_h.Guest.RecvNone(150) is { Op: OpRw } p2 ? p2 : null);
        _h.Guest.Send(7002, 5002, OpCreditUpdate, bufAlloc: 2000, fwdCnt: 3000);
        var rest = _h.GuestReadData(7002, 2000);
        Assert.Equal(data, first.Concat(second).Concat(rest).ToArray());
        _h.AssertHealthy();
    }

    [Fact]
    public void Credit_request_gets_credit_update_with_forwarded_count()
    {
        using var listener = _h.ListenGuestPort(5003);
        using var host = _h.OpenGuestInitiated(listener, 7003, 5003);
        _h.Guest.Send(7003, 5003, OpRw, new byte[300]);
        VsockHarness.ReadExactly(host, 300);
        _h.Guest.Send(7003, 5003, OpCreditRequest);
        var p = _h.Guest.RecvWhere(x => x.Op == OpCreditUpdate);
        Assert.Equal(300u, p.FwdCnt);
        Assert.Equal(ConnBufAlloc, p.BufAlloc);
    }

    [Fact]
    public void Host_stall_buffers_up_to_credit_then_drains_and_updates_credit()
    {
        using var listener = _h.ListenGuestPort(5004);
        using var host = _h.OpenGuestInitiated(listener, 7004, 5004);
        host.ReceiveBufferSize = 4096;
        // The host reads nothing: push the guest's whole credit (256 KiB) in 32 KiB packets.
        var chunk = new byte[32 * 1024];
        for (int i = 0; i < chunk.Length; i++) chunk[i] = (byte)i;
        for (int i = 0; i < ConnBufAlloc / chunk.Length; i++) _h.Guest.Send(7004, 5004, OpRw, chunk);
        _h.Guest.WaitTxDone();
        Assert.Equal(1, _h.Device.ConnectionCount);
        // Now drain on the host: everything arrives in order and the device tells the guest about the space.
        var all = VsockHarness.ReadExactly(host, (int)ConnBufAlloc);
        for (int i = 0; i < all.Length; i++) Assert.Equal((byte)(i % chunk.Length), all[i]);
        // Unprompted updates keep the guest's view of our free space above the threshold...
        var upd = _h.Guest.RecvWhere(p => p.Op == OpCreditUpdate && ConnBufAlloc - (ConnBufAlloc - p.FwdCnt) >= CreditUpdateThreshold);
        Assert.True(upd.FwdCnt <= ConnBufAlloc);
        // ...and a CREDIT_REQUEST gets the exact count.
        _h.Guest.Send(7004, 5004, OpCreditRequest);
        Assert.Equal(ConnBufAlloc, _h.Guest.RecvWhere(p => p.Op == OpCreditUpdate && p.FwdCnt == ConnBufAlloc).FwdCnt);
        _h.AssertHealthy();
    }

    [Fact]
    public void Guest_overrunning_credit_is_reset()
    {
        using var listener = _h.ListenGuestPort(5005);
        using var host = _h.OpenGuestInitiated(listener, 7005, 5005);
        host.ReceiveBufferSize = 4096;
        var chunk = new byte[64 * 1024];
        // 1 MiB: more than the socket's send buffer plus the 256 KiB credit we gave.
        for (int i = 0; i < 16; i++) _h.Guest.Send(7005, 5005, OpRw, chunk);
        var rst = _h.Guest.RecvWhere(p => p.Op == OpRst);
        Assert.Equal((5005u, 7005u), (rst.SrcPort, rst.DstPort));
        Assert.Equal(0, _h.Device.ConnectionCount);
    }

    [Fact]
    public void Guest_RST_closes_host_socket()
    {
        var (host, hostPort) = _h.OpenHostInitiated(60);
        using var _ = host;
        _h.Guest.Send(60, hostPort, OpRst);
        Assert.True(VsockHarness.WaitClosed(host));
        Assert.Equal(0, _h.Device.ConnectionCount);
        Assert.Null(_h.Guest.RecvNone(100)); // no RST answers an RST
    }

    [Fact]
    public void Guest_full_shutdown_closes_host_and_sends_RST()
    {
        using var listener = _h.ListenGuestPort(5006);
        using var host = _h.OpenGuestInitiated(listener, 7006, 5006);
        _h.Guest.Send(7006, 5006, OpShutdown, flags: ShutdownRcv | ShutdownSend);
        var rst = _h.Guest.RecvWhere(p => p.Op == OpRst);
        Assert.Equal(7006u, rst.DstPort);
        Assert.True(VsockHarness.WaitClosed(host));
    }

    [Fact]
    public void Guest_half_shutdown_send_half_closes_host_after_data()
    {
        using var listener = _h.ListenGuestPort(5007);
        using var host = _h.OpenGuestInitiated(listener, 7007, 5007);
        _h.Guest.Send(7007, 5007, OpRw, "last words"u8.ToArray());
        _h.Guest.Send(7007, 5007, OpShutdown, flags: ShutdownSend);
        Assert.Equal("last words", Encoding.ASCII.GetString(VsockHarness.ReadExactly(host, 10)));
        Assert.True(VsockHarness.WaitClosed(host, 2000)); // EOF: the host's read side is done
        // The other direction still works.
        host.Send("reply"u8.ToArray());
        Assert.Equal("reply", Encoding.ASCII.GetString(_h.GuestReadData(7007, 5)));
    }

    [Fact]
    public void Host_close_sends_shutdown_then_RST_after_grace()
    {
        var (host, hostPort) = _h.OpenHostInitiated(61);
        host.Send("bye"u8.ToArray());
        host.Dispose();
        Assert.Equal("bye", Encoding.ASCII.GetString(_h.GuestReadData(61, 3)));
        var sd = _h.Guest.RecvWhere(p => p.Op == OpShutdown);
        Assert.Equal(ShutdownRcv | ShutdownSend, sd.Flags);
        var sw = Stopwatch.StartNew();
        var rst = _h.Guest.RecvWhere(p => p.Op == OpRst);
        Assert.Equal((hostPort, 61u), (rst.SrcPort, rst.DstPort));
        Assert.Equal(0, _h.Device.ConnectionCount);
        Assert.True(sw.ElapsedMilliseconds < 3000);
    }

    [Fact]
    public void Host_close_then_guest_RST_removes_at_once()
    {
        var (host, hostPort) = _h.OpenHostInitiated(62);
        host.Dispose();
        _h.Guest.RecvWhere(p => p.Op == OpShutdown);
        _h.Guest.Send(62, hostPort, OpRst);
        _h.Guest.WaitTxDone();
        Assert.Equal(0, _h.Device.ConnectionCount);
        Assert.Null(_h.Guest.RecvNone(500)); // the kill timer finds nothing left to reset
    }

    [Fact]
    public void Packets_for_unknown_connections_get_RST()
    {
        _h.Guest.Send(1, 2, OpRw, "x"u8.ToArray());
        var p = _h.Guest.Recv();
        Assert.Equal(OpRst, p.Op);
        Assert.Equal((2u, 1u), (p.SrcPort, p.DstPort));
    }

    [Fact]
    public void Many_concurrent_connections()
    {
        const int N = 100;
        var hosts = new List<(Socket S, uint Port, uint GuestPort)>();
        try
        {
            for (int i = 0; i < N; i++)
            {
                var s = _h.ConnectHost();
                s.Send(Encoding.ASCII.GetBytes($"CONNECT {1000 + i}\n"));
                hosts.Add((s, 0, (uint)(1000 + i)));
            }
            var ports = new Dictionary<uint, uint>();
            while (ports.Count < N)
            {
                var req = _h.Guest.RecvWhere(p => p.Op == OpRequest);
                ports[req.DstPort] = req.SrcPort;
                _h.Guest.Send(req.DstPort, req.SrcPort, OpResponse);
            }
            Assert.Equal(N, ports.Values.Distinct().Count());
            for (int i = 0; i < N; i++)
            {
                var (s, _, gp) = hosts[i];
                Assert.Equal($"OK {ports[gp]}", VsockHarness.ReadLine(s));
                s.Send(Encoding.ASCII.GetBytes($"msg-{i:D4}"));
            }
            // The guest echoes whatever arrives, upper-cased, on the connection it came from.
            int echoed = 0;
            while (echoed < N)
            {
                var p = _h.Guest.RecvWhere(x => x.Op == OpRw);
                var text = Encoding.ASCII.GetString(p.Payload);
                _h.Guest.Send(p.DstPort, p.SrcPort, OpRw, Encoding.ASCII.GetBytes(text.ToUpperInvariant()));
                echoed++;
            }
            for (int i = 0; i < N; i++)
                Assert.Equal($"MSG-{i:D4}", Encoding.ASCII.GetString(VsockHarness.ReadExactly(hosts[i].S, 8)));
            Assert.Equal(N, _h.Device.ConnectionCount);
            Assert.Equal(N, _h.Device.Metrics.ConnsAdded);
        }
        finally
        {
            foreach (var h in hosts) h.S.Dispose();
        }
        // Every host close turns into SHUTDOWN for the guest; the guest answers RST and the table empties.
        int closed = 0;
        while (closed < N)
        {
            var p = _h.Guest.RecvWhere(x => x.Op == OpShutdown);
            _h.Guest.Send(p.DstPort, p.SrcPort, OpRst);
            closed++;
        }
        _h.Guest.WaitTxDone();
        Assert.Equal(0, _h.Device.ConnectionCount);
        _h.AssertHealthy();
    }

    [Fact]
    public void No_rx_buffers_pauses_host_polling_until_buffers_arrive()
    {
        using var h = new VsockHarness(rxBuffers: 0);
        using var listener = h.ListenGuestPort(5010);
        h.Guest.Send(7010, 5010, OpRequest);
        h.Guest.WaitTxDone();
        using var host = listener.Accept();
        host.Send(new byte[1000]);
        Thread.Sleep(100);
        long before = Interlocked.Read(ref h.Loop.Dispatches);
        Thread.Sleep(300);
        Assert.True(Interlocked.Read(ref h.Loop.Dispatches) - before < 10, "device busy-loops without rx buffers");
        h.Guest.PostRx(8);
        h.Guest.Kick(0);
        Assert.Equal(OpResponse, h.Guest.Recv().Op);
        Assert.Equal(1000, h.GuestReadData(7010, 1000).Length);
        h.AssertHealthy();
    }

    [Fact]
    public void Split_header_and_data_rx_buffers_work()
    {
        using var h = new VsockHarness(splitRx: true);
        var (host, _) = h.OpenHostInitiated(70);
        using var _s = host;
        var data = Enumerable.Range(0, 10000).Select(i => (byte)(i * 7)).ToArray();
        host.Send(data);
        Assert.Equal(data, h.GuestReadData(70, data.Length));
    }

    [Fact]
    public void Device_reset_closes_host_sockets()
    {
        var (host, _) = _h.OpenHostInitiated(80);
        using var _s = host;
        _h.Device.Reset();
        foreach (var q in _h.Queues) q.Reset();
        Assert.True(VsockHarness.WaitClosed(host));
        Assert.Equal(0, _h.Device.ConnectionCount);
        _h.AssertHealthy();
    }

    [Fact]
    public void Data_path_does_not_allocate()
    {
        var (host, hostPort) = _h.OpenHostInitiated(91);
        using var _s = host;
        var msg = new byte[512];
        uint consumed = 0;
        void RoundTrip()
        {
            host.Send(msg);
            var p = _h.Guest.RecvWhere(x => x.Op == OpRw);
            consumed += (uint)p.Payload.Length; // the guest reports what it consumed, or credit runs out at 64 KiB
            _h.Guest.Send(91, hostPort, OpRw, p.Payload, fwdCnt: consumed);
            VsockHarness.ReadExactly(host, p.Payload.Length);
        }
        for (int i = 0; i < 50; i++) RoundTrip(); // warm up: JIT, queue growth
        long before = Interlocked.Read(ref _h.Loop.HandlerAllocatedBytes);
        for (int i = 0; i < 500; i++) RoundTrip();
        long allocated = Interlocked.Read(ref _h.Loop.HandlerAllocatedBytes) - before;
        output.WriteLine($"device allocations over 500 round trips: {allocated} bytes");
        Assert.True(allocated < 4096, $"data path allocated {allocated} bytes over 500 round trips");
    }

    [Fact]
    public void Round_trip_latency()
    {
        var (host, hostPort) = _h.OpenHostInitiated(90);
        using var _s = host;
        var msg = new byte[64];
        var back = new byte[64];
        const int Warmup = 200, Iters = 2000;
        var samples = new double[Iters];
        var guest = new Thread(() =>
        {
            for (int i = 0; i < Warmup + Iters; i++)
            {
                var p = _h.Guest.RecvWhere(x => x.Op == OpRw);
                _h.Guest.Send(90, hostPort, OpRw, p.Payload, fwdCnt: (uint)((i + 1) * 64));
            }
        })
        { IsBackground = true };
        guest.Start();
        for (int i = 0; i < Warmup + Iters; i++)
        {
            msg[0] = (byte)i;
            long t0 = Stopwatch.GetTimestamp();
            host.Send(msg);
            int got = 0;
            while (got < 64) got += host.Receive(back, got, 64 - got, SocketFlags.None);
            long t1 = Stopwatch.GetTimestamp();
            Assert.Equal((byte)i, back[0]);
            if (i >= Warmup) samples[i - Warmup] = (t1 - t0) * 1e6 / Stopwatch.Frequency;
        }
        guest.Join();
        Array.Sort(samples);
        string line = $"[vsock latency] host write -> guest echo -> host read, 64 B, {Iters} round trips: " +
            $"p50 {samples[Iters / 2]:F1} us, p90 {samples[Iters * 9 / 10]:F1} us, p99 {samples[Iters * 99 / 100]:F1} us, min {samples[0]:F1} us";
        output.WriteLine(line);
        Console.WriteLine(line);
        _h.AssertHealthy();
    }
}
