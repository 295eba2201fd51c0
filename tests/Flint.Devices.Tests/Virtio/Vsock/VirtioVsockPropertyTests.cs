using System.Net.Sockets;
using CsCheck;
using static Flint.Devices.Virtio.Vsock.VsockConstants;

namespace Flint.Devices.Tests.Virtio.Vsock;

/// <summary>
/// Random guest packets (plausible and not: any op, type, CID, length, header size) against a live device with a
/// host listener that accepts and talks back. Whatever the guest sends: no handler throws, every tx chain is
/// consumed, every packet the device produces is well formed (host to our guest, stream, a known op, payload
/// only on RW and within the length), and a clean connection works afterwards.
/// </summary>
public sealed class VirtioVsockPropertyTests
{
    public readonly record struct RandomPacket(byte SrcCid, byte DstCid, byte SrcPort, byte DstPort, ushort Op, ushort Type,
        uint Len, ushort PayloadLen, byte HeaderLen, byte Flags, uint BufAlloc, uint FwdCnt);

    private static readonly uint[] Ports = [1, 2, 5300, 5301, 1u << 30, 7300];

    private static readonly Gen<RandomPacket> GenPacket =
        Gen.Select(
            Gen.Frequency((8, Gen.Const((byte)3)), (1, Gen.Byte[0, 5])),
            Gen.Frequency((8, Gen.Const((byte)2)), (1, Gen.Byte[0, 5])),
            Gen.Byte[0, (byte)(Ports.Length - 1)],
            Gen.Byte[0, (byte)(Ports.Length - 1)],
            Gen.Frequency((8, Gen.UShort[1, 7]), (1, Gen.UShort)),
            Gen.Frequency((8, Gen.Const((ushort)1)), (1, Gen.UShort[0, 3])),
            Gen.Frequency((4, Gen.UInt[0, 600]), (1, Gen.UInt)),
            Gen.UShort[0, 600])
        .Select(Gen.Select(
            Gen.Frequency((8, Gen.Const((byte)44)), (1, Gen.Byte[0, 80])),
            Gen.Byte[0, 3],
            Gen.Frequency((3, Gen.UInt[0, 4096]), (1, Gen.UInt)),
            Gen.UInt[0, 4096]),
            (a, b) => new RandomPacket(a.Item1, a.Item2, a.Item3, a.Item4, a.Item5, a.Item6, a.Item7, a.Item8,
                b.Item1, b.Item2, b.Item3, b.Item4));

    [Fact]
    public void Random_packets_never_break_the_device()
    {
        using var h = new VsockHarness(rxBuffers: 32);
        using var l0 = h.ListenGuestPort(5300);
        using var l1 = h.ListenGuestPort(5301);
        l0.Blocking = false;
        l1.Blocking = false;
        var accepted = new List<Socket>();
        var rnd = new Random(7);
        var bad = new List<string>();
        int packets = 0;

        void DrainRx()
        {
            while (h.Guest.TryRecv() is { } p)
            {
                packets++;
                if (p.SrcCid != HostCid || p.DstCid != VsockHarness.GuestCid || p.Type != TypeStream || p.Op is < 1 or > 7)
                    bad.Add(p.ToString());
                if (p.Op != OpRw && p.Payload.Length != 0) bad.Add("payload on " + p);
                if (p.Op == OpRw && (p.Len == 0 || p.Len > MaxRxPayload)) bad.Add("bad RW len " + p);
            }
        }

        void HostSide()
        {
            foreach (var l in new[] { l0, l1 })
            {
                try { while (true) { var s = l.Accept(); s.Blocking = false; accepted.Add(s); } }
                catch (SocketException) { }
            }
            foreach (var s in accepted.ToArray())
            {
                try
                {
                    switch (rnd.Next(6))
                    {
                        case 0: s.Send(new byte[rnd.Next(1, 3000)]); break;
                        case 1: s.Dispose(); accepted.Remove(s); break;
                        default:
                            var buf = new byte[65536];
                            try { while (s.Receive(buf) > 0) { } } catch (SocketException) { }
                            break;
                    }
                }
                catch (Exception) { accepted.Remove(s); }
            }
        }

        GenPacket.Array[1, 30].Sample(batch =>
        {
            foreach (var r in batch)
            {
                var hdr = VsockGuest.Header(r.SrcCid, r.DstCid, Ports[r.SrcPort], Ports[r.DstPort], r.Len, r.Op, r.Flags, r.BufAlloc, r.FwdCnt, r.Type);
                var full = hdr;
                if (r.HeaderLen != 44)
                {
                    full = new byte[r.HeaderLen];
                    Array.Copy(hdr, full, Math.Min(44, (int)r.HeaderLen));
                }
                h.Guest.SendRaw(full, r.PayloadLen > 0 ? new byte[r.PayloadLen] : null);
                DrainRx();
            }
            h.Guest.WaitTxDone();
            HostSide();
            Thread.Sleep(2);
            DrainRx();
        }, iter: 150, threads: 1);

        foreach (var s in accepted) s.Dispose();
        Assert.Empty(bad);
        Assert.True(packets > 0);
        h.AssertHealthy();
        Assert.Equal(0, h.Device.Metrics.RxQueueEventFails);

        // Still a working device.
        var (host, hp) = h.OpenHostInitiated(4242);
        using var _ = host;
        host.Send("still here"u8.ToArray());
        Assert.Equal("still here", System.Text.Encoding.ASCII.GetString(h.GuestReadData(4242, 10)));
    }
}
