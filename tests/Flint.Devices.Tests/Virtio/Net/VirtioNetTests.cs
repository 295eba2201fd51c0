using System.Buffers.Binary;
using Flint.Devices.Mmds;
using Flint.Devices.Tests.Mmds;
using Flint.Devices.Tests.Net;
using Flint.Devices.Virtio;
using Flint.Devices.Virtio.Net;
using static Flint.Devices.Virtio.Net.NetConstants;

namespace Flint.Devices.Tests.Virtio.Net;

[Collection("netns")]
public sealed class VirtioNetTests
{
    private static bool IsArpReplyFrom(byte[] f, uint ip) =>
        f.Length >= 42 && BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(12)) == 0x0806
        && BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(20)) == 2 && BinaryPrimitives.ReadUInt32BigEndian(f.AsSpan(28)) == ip;

    private static byte[] ArpToHost() => Frames.ArpRequest(NetHarness.GuestMac, NetnsTap.GuestIpValue, NetnsTap.HostIpValue);

    [Fact]
    public void Identity_features_and_config()
    {
        using var h = new NetHarness(activate: false);
        var d = h.Device;
        Assert.Equal(1u, d.DeviceType);
        Assert.Equal(new ushort[] { 256, 256 }, d.QueueMaxSizes.ToArray());
        ulong f = d.AvailableFeatures;
        foreach (int bit in new[] { 32, FeatureCsum, FeatureGuestCsum, FeatureMac, FeatureGuestTso4, FeatureGuestTso6, FeatureHostTso4, FeatureHostTso6, FeatureGuestUfo, FeatureHostUfo })
            Assert.NotEqual(0UL, f & (1UL << bit));
        Assert.NotEqual(0UL, f & (1UL << FeatureMrgRxbuf));
        Assert.NotEqual(0UL, f & VirtioFeatures.RingEventIdx);
        var cfg = new byte[8];
        d.ReadConfig(0, cfg);
        Assert.Equal(NetHarness.GuestMac, cfg[..6]);
        Assert.Equal(1, BinaryPrimitives.ReadUInt16LittleEndian(cfg.AsSpan(6)));
        d.WriteConfig(6, new byte[2]);
        Assert.Equal(1, d.Metrics.CfgFails);
        d.WriteConfig(0, new byte[] { 2, 0, 0, 0, 0, 9 });
        Assert.Equal(1, d.Metrics.MacAddressUpdates);
        Assert.Single(d.EventSources);
        Assert.Equal(h.Ns.Tap.Fd, d.EventSources[0].Fd);
        Assert.NotEqual(0u, d.EventSources[0].Events & EPOLLET);
    }

    [Fact]
    public void Offloads_follow_negotiated_features()
    {
        Assert.Equal(0u, Tap.OffloadsFor(1UL << FeatureGuestTso4)); // no TSO without checksum offload
        Assert.Equal(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_UFO,
            Tap.OffloadsFor((1UL << FeatureGuestCsum) | (1UL << FeatureGuestTso4) | (1UL << FeatureGuestTso6) | (1UL << FeatureGuestUfo)));
        ulong all = VirtioFeatures.Version1 | (1UL << FeatureMac) | (1UL << FeatureCsum) | (1UL << FeatureGuestCsum) | (1UL << FeatureGuestTso4)
            | (1UL << FeatureGuestTso6) | (1UL << FeatureGuestUfo) | (1UL << FeatureHostTso4) | (1UL << FeatureHostTso6) | (1UL << FeatureHostUfo);
        using var h = new NetHarness(features: all);
        Assert.Equal(0, h.Device.Metrics.ActivateFails);
        // The guest can still talk with every offload on.
        h.PostRxBig();
        h.Send(ArpToHost());
        Assert.NotNull(h.WaitFrame(f => IsArpReplyFrom(f, NetnsTap.HostIpValue)));
    }

    [Fact]
    public void ARP_request_gets_kernel_reply_through_the_TAP()
    {
        using var h = new NetHarness();
        h.PostRx(8);
        h.Send(ArpToHost());
        Assert.Equal(1, h.Device.Metrics.TxCount);
        Assert.Equal(42 + NetConstants.VnetHeaderSize, h.Device.Metrics.TxBytesCount); // Firecracker counts the header too
        Assert.Single(h.Tx.TakeUsed());
        var reply = h.WaitFrame(f => IsArpReplyFrom(f, NetnsTap.HostIpValue));
        Assert.NotNull(reply);
        Assert.Equal(NetHarness.GuestMac, reply![..6]);
        Assert.True(h.Device.Metrics.RxCount >= 1);
        Assert.True(h.Line.Count >= 1);
    }

    [Fact]
    public void Zero_copy_into_big_chain()
    {
        using var h = new NetHarness();
        h.PostRxBig();
        h.Send(ArpToHost());
        Assert.NotNull(h.WaitFrame(f => IsArpReplyFrom(f, NetnsTap.HostIpValue)));
    }

    [Fact]
    public void No_rx_buffers_does_not_spin_and_resumes_on_notify()
    {
        using var h = new NetHarness();
        h.Send(ArpToHost());
        Thread.Sleep(200); // the kernel's reply now sits in the tap
        h.Device.OnTapEvent(1);
        h.Device.OnTapEvent(1);
        Assert.Equal(2, h.Device.Metrics.NoRxAvailBuffer);
        Assert.Empty(h.TakeRx());
        h.PostRx(4);
        h.Device.ProcessQueue(RxQueue); // the guest's rx notify
        Assert.Contains(h.TakeRx(), f => IsArpReplyFrom(f, NetnsTap.HostIpValue));
        // Tap now drained: further events read nothing and leave the buffers alone.
        h.Device.OnTapEvent(1);
        Assert.Empty(h.TakeRx());
        Assert.Equal(4 - 1, h.RxQ.PendingCount);
    }

    private const ulong MrgFeatures = VirtioFeatures.Version1 | (1UL << FeatureMac) | (1UL << FeatureMrgRxbuf);

    /// <summary>A 1442-byte frame (UDP, 1400 bytes of 'x') from the namespace to the guest, whose MAC the host is told.</summary>
    private static void SendUdpToGuest(NetHarness h)
    {
        h.Ns.Exec($"ip neigh replace {NetnsTap.GuestIpText} lladdr 06:00:ac:10:00:02 dev {h.Ns.TapName}");
        h.Ns.Exec("python3 -c \"import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x' * 1400, ('"
            + NetnsTap.GuestIpText + "', 9))\"");
    }

    private static bool IsUdp1400(byte[] f) => f.Length == 1442 && f[23] == 17 && f[^1] == (byte)'x';

    [Fact]
    public void Mergeable_rx_spreads_a_frame_over_small_buffers()
    {
        using var h = new NetHarness(features: MrgFeatures);
        h.PostRx(16, size: 256);
        SendUdpToGuest(h);
        var f = h.WaitFrame(IsUdp1400);
        Assert.NotNull(f);
        Assert.Equal(6, h.LastNumBuffers); // 12 + 1442 bytes over 256-byte buffers
        Assert.All(f![42..], b => Assert.Equal((byte)'x', b));
        // Without receive offloads the device gathers room for one MTU frame (1530 bytes: 6 buffers) per frame and
        // gives back what the frame did not fill.
        Assert.Equal(16 - 6, h.RxQ.PendingCount);
    }

    [Fact]
    public void Mergeable_rx_waits_for_enough_buffers_then_resumes()
    {
        using var h = new NetHarness(features: MrgFeatures);
        h.PostRx(4, size: 256); // 1024 bytes: less than an MTU frame
        SendUdpToGuest(h);
        Thread.Sleep(100);
        h.Device.OnTapEvent(1);
        Assert.Empty(h.TakeRx());
        Assert.Equal(4, h.RxQ.PendingCount); // taken, found too small, put back
        Assert.True(h.Device.Metrics.NoRxAvailBuffer >= 1);
        h.PostRx(4, size: 256);
        h.Device.ProcessQueue(RxQueue); // the guest's rx notify
        Assert.Contains(h.TakeRx(), IsUdp1400);
        Assert.Equal(6, h.LastNumBuffers);
        Assert.Equal(2, h.RxQ.PendingCount);
    }

    [Fact]
    public void Mergeable_rx_with_EVENT_IDX_asks_for_a_kick_when_it_needs_more_buffers()
    {
        // A Linux guest with EVENT_IDX kicks the rx queue only when its avail idx passes our avail_event: a device
        // that puts back too-small buffers and waits must move avail_event, or it waits forever.
        using var h = new NetHarness(features: MrgFeatures | VirtioFeatures.RingEventIdx);
        Assert.True(h.RxQ.EventIdx);
        h.PostRx(4, size: 256);
        SendUdpToGuest(h);
        Thread.Sleep(100);
        h.Device.OnTapEvent(1);
        Assert.Empty(h.TakeRx());
        ushort availEvent = h.Memory.Read<ushort>(h.Rx.UsedRing + 4 + 8UL * h.Rx.Size);
        Assert.Equal(4, availEvent); // the next buffer the guest adds (avail idx 4 -> 5) kicks us
        h.PostRx(4, size: 256);
        h.Device.ProcessQueue(RxQueue);
        Assert.Contains(h.TakeRx(), IsUdp1400);
    }

    [Fact]
    public void Mergeable_rx_takes_what_fits_when_the_guest_has_posted_every_descriptor()
    {
        // With receive TSO the largest frame is 64 KiB; 256 x 128 bytes can never hold one, and the guest has no
        // descriptor left to add, so waiting would stall forever: small frames go through.
        using var h = new NetHarness(features: MrgFeatures | (1UL << FeatureGuestCsum) | (1UL << FeatureGuestTso4));
        h.PostRx(256, size: 128);
        h.Send(ArpToHost());
        Assert.NotNull(h.WaitFrame(f => IsArpReplyFrom(f, NetnsTap.HostIpValue)));
        Assert.Equal(1, h.LastNumBuffers);
    }

    [Fact]
    public void Mergeable_rx_completes_a_malformed_chain_and_the_ones_gathered_before_it()
    {
        using var h = new NetHarness(features: MrgFeatures);
        h.PostRx(2, size: 256);
        h.Rx.Push((h.Alloc(256), 256, false)); // device-readable: not a receive buffer
        SendUdpToGuest(h);
        Thread.Sleep(100);
        h.Device.OnTapEvent(1);
        var used = h.Rx.TakeUsed();
        Assert.Equal(3, used.Count);
        Assert.All(used, u => Assert.Equal(0u, u.Len));
        Assert.Equal(1, h.Device.Metrics.RxFails);
        h.PostRx(8, size: 256);
        h.Device.ProcessQueue(RxQueue);
        Assert.Contains(h.TakeRx(), IsUdp1400); // the frame waited in the tap
    }

    [Fact]
    public void Ping_from_namespace_is_answered_by_the_guest()
    {
        using var h = new NetHarness();
        h.PostRx(64);
        using var ping = h.Ns.Start(NetnsTap.PingCommand(NetnsTap.GuestIpText));
        bool answered = false;
        var sw = System.Diagnostics.Stopwatch.StartNew();
        while (!ping.HasExited && sw.ElapsedMilliseconds < 6000)
        {
            h.Device.OnTapEvent(1);
            foreach (var f in h.TakeRx())
            {
                var reply = GuestResponder.Answer(f, NetHarness.GuestMac, NetnsTap.GuestIpValue);
                if (reply != null)
                {
                    h.Send(reply);
                    if (BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(12)) == 0x0800) answered = true;
                }
            }
            if (h.RxQ.PendingCount < 8) h.PostRx(32);
            Thread.Sleep(2);
        }
        ping.WaitForExit(5000);
        Assert.True(answered);
        Assert.True(ping.ExitCode == 0, ping.StandardOutput.ReadToEnd() + ping.StandardError.ReadToEnd());
    }

    [Fact]
    public void Malformed_tx_chains_are_counted_and_completed()
    {
        using var h = new NetHarness();
        ulong a = h.Alloc(64);
        h.Tx.Push((a, 8, false));                             // shorter than the virtio header
        h.Tx.Push((a, 12, false), (a, 30, true));             // device-writable descriptor in a tx chain
        h.Tx.Push((NetHarness.MemSize - 4, 64, false));       // runs past guest memory
        h.Tx.Push((a, 12, false), (0x4000_0000, 10, false));  // outside guest memory
        h.Tx.Push((a, 70000, false));                         // larger than any frame
        h.Device.ProcessQueue(TxQueue);
        var used = h.Tx.TakeUsed();
        Assert.Equal(5, used.Count);
        Assert.All(used, u => Assert.Equal(0u, u.Len));
        // As Firecracker counts them (net device.rs): chains it cannot load (writable descriptor, outside guest memory)
        // are tx_fails; loaded chains that are no frame (too short, too long) are tx_malformed_frames.
        Assert.Equal(2, h.Device.Metrics.TxMalformedFrames);
        Assert.Equal(3, h.Device.Metrics.TxFails);
        Assert.Equal(0, h.Device.Metrics.TxCount);
        // Malformed rx chains: a device-readable buffer is refused, not written.
        h.Rx.Push((a, 100, false));
        h.Send(ArpToHost());
        Thread.Sleep(100);
        h.Device.OnTapEvent(1);
        Assert.Equal(1, h.Device.Metrics.RxFails);
    }

    [Fact]
    public void Spoofed_source_MAC_is_counted()
    {
        using var h = new NetHarness();
        var f = ArpToHost();
        f[11] ^= 1;
        h.Send(f);
        Assert.Equal(1, h.Device.Metrics.TxSpoofedMacCount);
    }

    [Fact]
    public void Tx_rate_limiter_holds_frames_until_its_event()
    {
        var lim = new FakeLimiter { Budget = 1 };
        using var h = new NetHarness(tx: lim);
        h.Send(ArpToHost());
        h.Send(ArpToHost());
        Assert.Equal(1, h.Device.Metrics.TxCount);
        Assert.Equal(1, h.Device.Metrics.TxRateLimiterThrottled);
        Assert.Equal(1, h.TxQ.PendingCount);
        lim.Budget = 10;
        h.Device.OnRateLimiterEvent(rx: false);
        Assert.Equal(2, h.Device.Metrics.TxCount);
        Assert.Equal(0, h.TxQ.PendingCount);
        Assert.Equal(2, h.Device.EventSources.Count);
    }

    [Fact]
    public void Reset_stops_the_device()
    {
        using var h = new NetHarness();
        h.Device.Reset();
        Assert.False(h.Device.IsActivated);
        h.Device.OnTapEvent(1);
        h.Device.ProcessQueue(TxQueue);
        Assert.Equal(1, h.Device.Metrics.EventFails);
    }
}

/// <summary>Test-side limiter: a budget of frames.</summary>
public sealed class FakeLimiter : INetRateLimiter
{
    public int Budget;
    public bool Consume(ulong bytes)
    {
        if (Budget <= 0) { IsBlocked = true; return false; }
        Budget--;
        return true;
    }
    public bool IsBlocked { get; private set; }
    public int EventFd => 0; // any fd number: the test calls OnRateLimiterEvent itself
    public bool OnEvent() { IsBlocked = Budget <= 0; return !IsBlocked; }
}

/// <summary>Plays a guest network stack just enough to answer ARP and ICMP echo for its address.</summary>
public static class GuestResponder
{
    public static byte[]? Answer(byte[] f, byte[] mac, uint ip)
    {
        if (f.Length < 42) return null;
        ushort type = BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(12));
        if (type == 0x0806 && BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(20)) == 1 && BinaryPrimitives.ReadUInt32BigEndian(f.AsSpan(38)) == ip)
        {
            var senderMac = f[22..28];
            uint senderIp = BinaryPrimitives.ReadUInt32BigEndian(f.AsSpan(28));
            var r = Frames.ArpRequest(mac, ip, senderIp, op: 2);
            senderMac.CopyTo(r, 0);
            senderMac.CopyTo(r, 32);
            return r;
        }
        if (type == 0x0800 && f[23] == 1 && BinaryPrimitives.ReadUInt32BigEndian(f.AsSpan(30)) == ip)
        {
            int ihl = (f[14] & 15) * 4, total = BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(16));
            var icmp = f.AsSpan(14 + ihl, total - ihl).ToArray();
            if (icmp[0] != 8) return null;
            icmp[0] = 0;
            icmp[2] = icmp[3] = 0;
            BinaryPrimitives.WriteUInt16BigEndian(icmp.AsSpan(2), Flint.Devices.Mmds.PacketUtil.Checksum(icmp));
            uint src = BinaryPrimitives.ReadUInt32BigEndian(f.AsSpan(26));
            return Frames.Ipv4(ip, src, 1, icmp, dstMac: f[6..12], srcMac: mac);
        }
        return null;
    }
}

[CollectionDefinition("netns", DisableParallelization = true)]
public sealed class NetnsCollection;
