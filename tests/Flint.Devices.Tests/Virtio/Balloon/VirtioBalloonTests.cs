using System.Buffers.Binary;
using Flint.Devices.Virtio;
using Flint.Devices.Virtio.Balloon;
using static Flint.Devices.Virtio.Balloon.BalloonConstants;

namespace Flint.Devices.Tests.Virtio.Balloon;

public sealed class VirtioBalloonTests
{
    private static void FillPages(BalloonHarness h, uint firstPfn, uint count, byte value) =>
        h.Memory.Fill((ulong)firstPfn << 12, (ulong)count << 12, value);

    private static void AssertPage(BalloonHarness h, uint pfn, byte value) =>
        Assert.All(h.Memory.GetSpan((ulong)pfn << 12, 4096).ToArray(), b => Assert.Equal(value, b));

    [Fact]
    public void Identity_features_and_queues()
    {
        using var plain = new VirtioBalloon(0, false, 0);
        Assert.Equal(5u, plain.DeviceType);
        Assert.Equal(VirtioFeatures.Version1, plain.AvailableFeatures);
        Assert.Equal(2, plain.QueueMaxSizes.Length);
        Assert.Single(plain.EventSources); // the inflate resume eventfd

        using var full = new VirtioBalloon(0, true, 5);
        Assert.Equal(VirtioFeatures.Version1 | 2UL | 4UL, full.AvailableFeatures);
        Assert.Equal(new ushort[] { 256, 256, 256 }, full.QueueMaxSizes.ToArray());
        Assert.Equal(2, full.EventSources.Count); // the stats timer, then the inflate resume eventfd
    }

    [Fact]
    public void Config_space_holds_target_and_actual()
    {
        using var h = new BalloonHarness(amountMib: 64);
        Span<byte> cfg = stackalloc byte[8];
        h.Device.ReadConfig(0, cfg);
        Assert.Equal(64u * 256, BinaryPrimitives.ReadUInt32LittleEndian(cfg));
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(cfg[4..]));

        // The driver reports actual; num_pages is the host's and ignores writes.
        h.Device.WriteConfig(4, BitConverter.GetBytes(1000u));
        h.Device.WriteConfig(0, BitConverter.GetBytes(7u));
        h.Device.ReadConfig(0, cfg);
        Assert.Equal(64u * 256, BinaryPrimitives.ReadUInt32LittleEndian(cfg));
        Assert.Equal(1000u, BinaryPrimitives.ReadUInt32LittleEndian(cfg[4..]));
        // A byte-wide write to the top of actual, and an 8-byte write spanning both fields.
        h.Device.WriteConfig(7, [1]);
        Assert.Equal(1000u + (1u << 24), h.Device.ActualPages);
        h.Device.WriteConfig(0, BitConverter.GetBytes(0x0000_0200_0000_0009UL));
        Assert.Equal(0x200u, h.Device.ActualPages);
        Assert.Equal(64u * 256, h.Device.TargetPages);
        // Past the config: zeroes, writes ignored.
        Span<byte> four = stackalloc byte[4];
        h.Device.ReadConfig(8, four);
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(four));
        h.Device.WriteConfig(100, four);
    }

    [Fact]
    public void Update_target_signals_config_change()
    {
        using var h = new BalloonHarness(amountMib: 1);
        uint gen = h.Device.ConfigGeneration;
        h.Device.UpdateTarget(3); // the harness guest has 4 MiB
        Assert.Equal(768u, h.Device.TargetPages);
        Assert.NotEqual(gen, h.Device.ConfigGeneration);
        Assert.Equal(VirtioInterrupt.ConfigChange, h.Interrupt.Status & VirtioInterrupt.ConfigChange);
        Assert.Equal(1, h.Line.Count);
        Assert.Equal(3u, h.Device.GetConfig().AmountMib);
        // Above the guest's RAM (4 MiB here): Firecracker's 400 text, nothing changes.
        var e = Assert.Throws<InvalidOperationException>(() => h.Device.UpdateTarget(uint.MaxValue));
        Assert.Equal($"Requested memory should be less than {uint.MaxValue}MiB", e.Message);
        Assert.Throws<InvalidOperationException>(() => h.Device.UpdateTarget(5));
        h.Device.UpdateTarget(4); // all of it is allowed
        Assert.Equal(1024u, h.Device.TargetPages);
    }

    [Fact]
    public void Update_target_before_activation_is_refused()
    {
        // Firecracker's update_size: DeviceNotActive until the driver has set the device up.
        using var d = new VirtioBalloon(0, false, 0);
        var e = Assert.Throws<InvalidOperationException>(() => d.UpdateTarget(1));
        Assert.Equal("Device not activated yet.", e.Message);
        Assert.Equal(0u, d.TargetPages);
    }

    [Fact]
    public void Too_large_amount_is_rejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new VirtioBalloon(uint.MaxValue / 256 + 1, false, 0));
    }

    [Fact]
    public void Inflate_returns_pages_to_the_host()
    {
        using var h = new BalloonHarness();
        FillPages(h, 256, 8, 0xab);
        FillPages(h, 600, 1, 0xcd);
        // Unsorted, with a duplicate, split over two descriptors of one chain.
        ushort head = h.Inflate.Push(h.PfnArray(259, 256, 258), h.PfnArray(257, 600, 256, 261));
        h.Device.ProcessQueue(InflateQueue);
        Assert.Equal(1, h.Inflate.UsedIdx);
        Assert.Equal((head, 0u), ((ushort)h.Inflate.Used(0).Id, h.Inflate.Used(0).Len));
        foreach (uint p in new uint[] { 256, 257, 258, 259, 261, 600 }) AssertPage(h, p, 0);
        AssertPage(h, 260, 0xab); // not in the list
        AssertPage(h, 262, 0xab);
        Assert.Equal(6, h.Device.Metrics.DiscardedPages);
        Assert.Equal(1, h.Device.Metrics.InflateCount);
        Assert.Equal(1, h.Line.Count);
        // The guest can use a discarded page again (deflate): it reads zeroes and keeps what it writes.
        h.Memory.Write((ulong)256 << 12, 0x1234u);
        Assert.Equal(0x1234u, h.Memory.Read<uint>((ulong)256 << 12));
    }

    [Fact]
    public void Many_PFNs_in_one_request()
    {
        using var h = new BalloonHarness();
        FillPages(h, 256, 512, 0x11);
        var pfns = Enumerable.Range(256, 512).Select(x => (uint)x).Reverse().ToArray();
        h.Inflate.Push(h.PfnArray(pfns[..200]), h.PfnArray(pfns[200..]));
        h.Device.ProcessQueue(InflateQueue);
        for (uint p = 256; p < 768; p += 37) AssertPage(h, p, 0);
        AssertPage(h, 767, 0);
        Assert.Equal(512, h.Device.Metrics.DiscardedPages);
    }

    [Fact]
    public void PFNs_outside_guest_RAM_are_skipped_and_counted()
    {
        // RAM at [0, 2 MiB) and [3 MiB, 4 MiB): PFNs 512..767 are a hole.
        using var h = new BalloonHarness(regions: [(0UL, 0x200000UL), (0x300000UL, 0x100000UL)]);
        FillPages(h, 510, 2, 0x77);
        FillPages(h, 768, 2, 0x77);
        h.Inflate.Push(h.PfnArray(510, 511, 512, 700, 767, 768, 769, 1024, uint.MaxValue));
        h.Device.ProcessQueue(InflateQueue);
        Assert.Equal(1, h.Inflate.UsedIdx);
        foreach (uint p in new uint[] { 510, 511, 768, 769 }) AssertPage(h, p, 0);
        Assert.Equal(5, h.Device.Metrics.InvalidPfns);
        Assert.Equal(4, h.Device.Metrics.DiscardedPages);
        Assert.Equal(0, h.Device.Metrics.EventFails);
    }

    [Fact]
    public void Consecutive_PFNs_across_adjacent_regions_are_split()
    {
        // Two regions back to back: one coalesced range would need two host mappings.
        using var h = new BalloonHarness(regions: [(0UL, 0x200000UL), (0x200000UL, 0x200000UL)]);
        FillPages(h, 510, 4, 0x99);
        h.Inflate.Push(h.PfnArray(510, 511, 512, 513));
        h.Device.ProcessQueue(InflateQueue);
        foreach (uint p in new uint[] { 510, 511, 512, 513 }) AssertPage(h, p, 0);
        Assert.Equal(4, h.Device.Metrics.DiscardedPages);
        Assert.Equal(0, h.Device.Metrics.InvalidPfns);
    }

    [Fact]
    public void Malformed_inflate_requests_are_acknowledged_without_discarding()
    {
        using var h = new BalloonHarness();
        FillPages(h, 300, 4, 0x42);
        // Length not a multiple of 4.
        var odd = h.PfnArray(300, 301);
        h.Inflate.Push((odd.Addr, 6, false));
        // Device-writable.
        var w = h.PfnArray(302);
        h.Inflate.Push((w.Addr, 4, true));
        // Outside guest memory (a broken chain).
        h.Inflate.Push((0x40_0000_0000, 4, false));
        // Next index past the table.
        var p = h.PfnArray(303);
        h.Inflate.SetDesc(12, p.Addr, 4, Descriptor.FlagNext, 500);
        h.Inflate.Publish(12);
        h.Device.ProcessQueue(InflateQueue);
        Assert.Equal(4, h.Inflate.UsedIdx);
        for (uint pfn = 300; pfn < 304; pfn++) AssertPage(h, pfn, 0x42);
        Assert.Equal(0, h.Device.Metrics.DiscardedPages);
        Assert.True(h.Device.Metrics.EventFails >= 4);
    }

    [Fact]
    public void Deflate_acknowledges_and_counts()
    {
        using var h = new BalloonHarness();
        h.Deflate.Push(h.PfnArray(1, 2, 3));
        h.Deflate.Push(h.PfnArray(4));
        h.Device.ProcessQueue(DeflateQueue);
        Assert.Equal(2, h.Deflate.UsedIdx);
        Assert.Equal(0u, h.Deflate.Used(1).Len);
        Assert.Equal(1, h.Device.Metrics.DeflateCount);
        Assert.Equal(1, h.Line.Count);
        // Nothing pending: counted, no interrupt.
        h.Device.ProcessQueue(DeflateQueue);
        Assert.Equal(2, h.Device.Metrics.DeflateCount);
        Assert.Equal(1, h.Line.Count);
    }

    [Fact]
    public void Stats_round_trip()
    {
        using var h = new BalloonHarness(amountMib: 4, statsIntervalS: 1);
        h.Device.WriteConfig(4, BitConverter.GetBytes(512u));
        ushort head = h.Stats.Push(h.StatsBuffer((StatFreeMemory, 123), (StatTotalMemory, 456), (11, 7), (StatSwapIn, 0)));
        h.Device.ProcessQueue(StatsQueue);
        // The buffer is held until the next polling tick.
        Assert.Equal(0, h.Stats.UsedIdx);
        Assert.Equal(0, h.Line.Count);
        var s = h.Device.GetStats();
        Assert.Equal(1024u, s.TargetPages);
        Assert.Equal(4u, s.TargetMib);
        Assert.Equal(512u, s.ActualPages);
        Assert.Equal(2u, s.ActualMib);
        Assert.Equal(123UL, s.FreeMemory);
        Assert.Equal(456UL, s.TotalMemory);
        Assert.Equal(0UL, s.SwapIn);
        Assert.Null(s.SwapOut);
        Assert.Null(s.HugetlbFailures);
        Assert.Equal(
            """{"target_pages":1024,"actual_pages":512,"target_mib":4,"actual_mib":2,"swap_in":0,"free_memory":123,"total_memory":456}""",
            s.ToJson());

        // Polling tick: the buffer goes back to the driver with an interrupt.
        h.Device.EventSources[0].OnReady(1);
        Assert.Equal(1, h.Stats.UsedIdx);
        Assert.Equal((head, 0u), ((ushort)h.Stats.Used(0).Id, h.Stats.Used(0).Len));
        Assert.Equal(1, h.Line.Count);
        // A tick with no buffer held does nothing.
        h.Device.EventSources[0].OnReady(1);
        Assert.Equal(1, h.Stats.UsedIdx);

        // The driver refills: new values replace old ones, missing ones are kept.
        h.Stats.Push(h.StatsBuffer((StatFreeMemory, 99), (StatHugetlbFailures, 3)));
        h.Device.ProcessQueue(StatsQueue);
        s = h.Device.GetStats();
        Assert.Equal(99UL, s.FreeMemory);
        Assert.Equal(456UL, s.TotalMemory);
        Assert.Equal(3UL, s.HugetlbFailures);
        Assert.Equal(2, h.Device.Metrics.StatsUpdatesCount);
    }

    [Fact]
    public void All_stat_names()
    {
        using var h = new BalloonHarness();
        h.Stats.Push(h.StatsBuffer(Enumerable.Range(0, 10).Select(t => ((ushort)t, (ulong)(t + 100))).ToArray()));
        h.Device.ProcessQueue(StatsQueue);
        string json = h.Device.GetStats().ToJson();
        Assert.Contains("\"swap_in\":100,\"swap_out\":101,\"major_faults\":102,\"minor_faults\":103,\"free_memory\":104," +
            "\"total_memory\":105,\"available_memory\":106,\"disk_caches\":107,\"hugetlb_allocations\":108,\"hugetlb_failures\":109}", json);
    }

    [Fact]
    public void A_second_stats_buffer_returns_the_first()
    {
        using var h = new BalloonHarness();
        ushort first = h.Stats.Push(h.StatsBuffer((StatMajorFaults, 1)));
        h.Stats.Push(h.StatsBuffer((StatMajorFaults, 2)));
        h.Device.ProcessQueue(StatsQueue);
        Assert.Equal(1, h.Stats.UsedIdx);
        Assert.Equal(first, (ushort)h.Stats.Used(0).Id);
        Assert.Equal(2UL, h.Device.GetStats().MajorFaults);
    }

    [Fact]
    public void Malformed_stats_buffers_are_held_and_counted()
    {
        using var h = new BalloonHarness();
        var b = h.StatsBuffer((StatMinorFaults, 5), (StatMajorFaults, 6));
        h.Stats.Push((b.Addr, 15, false)); // one whole entry and a torn one
        h.Device.ProcessQueue(StatsQueue);
        Assert.Equal(5UL, h.Device.GetStats().MinorFaults);
        Assert.Null(h.Device.GetStats().MajorFaults);
        Assert.Equal(1, h.Device.Metrics.StatsUpdateFails);
        h.Stats.Push((0x40_0000_0000, 10, false)); // outside memory: the previous buffer goes back, this one is held
        h.Device.ProcessQueue(StatsQueue);
        Assert.Equal(2, h.Device.Metrics.StatsUpdateFails);
        Assert.Equal(1, h.Stats.UsedIdx);
        h.Device.EventSources[0].OnReady(1);
        Assert.Equal(2, h.Stats.UsedIdx);
    }

    [Fact]
    public void Stats_interval_rules()
    {
        using var off = new VirtioBalloon(0, false, 0);
        Assert.Equal("Statistics cannot be enabled/disabled after activation.",
            Assert.Throws<InvalidOperationException>(() => off.UpdateStatsInterval(5)).Message);
        off.UpdateStatsInterval(0); // the same interval: a no-op, as in Firecracker
        Assert.Equal("Received stats query when stats are disabled.",
            Assert.Throws<InvalidOperationException>(() => off.GetStats()).Message);

        using var h = new BalloonHarness(statsIntervalS: 2);
        Assert.Throws<InvalidOperationException>(() => h.Device.UpdateStatsInterval(0));
        h.Stats.Push(h.StatsBuffer((StatFreeMemory, 1)));
        h.Device.ProcessQueue(StatsQueue);
        h.Device.UpdateStatsInterval(2); // unchanged: nothing happens
        Assert.Equal(0, h.Stats.UsedIdx);
        h.Device.UpdateStatsInterval(5); // new interval: fresh stats asked for at once
        Assert.Equal(1, h.Stats.UsedIdx);
        Assert.Equal(new BalloonConfig(16, false, 5), h.Device.GetConfig());
        // Firecracker's BalloonConfig (1.14+) always carries the two free page fields.
        Assert.Equal("""{"amount_mib":16,"deflate_on_oom":false,"stats_polling_interval_s":5,"free_page_hinting":false,"free_page_reporting":false}""",
            h.Device.GetConfig().ToJson());
    }

    [Fact]
    public void Real_stats_timer_fires()
    {
        using var h = new BalloonHarness(statsIntervalS: 1);
        h.Stats.Push(h.StatsBuffer((StatFreeMemory, 1)));
        h.Device.ProcessQueue(StatsQueue);
        var deadline = DateTime.UtcNow.AddSeconds(3);
        int fd = h.Device.EventSources[0].Fd;
        // Poll the timerfd as the event loop would: readable within the interval.
        while (h.Stats.UsedIdx == 0 && DateTime.UtcNow < deadline)
        {
            Thread.Sleep(50);
            if (TimerExpired(fd)) h.Device.EventSources[0].OnReady(1);
        }
        Assert.Equal(1, h.Stats.UsedIdx);
    }

    private static unsafe bool TimerExpired(int fd)
    {
        // A non-blocking read of the expiry count would consume it; peek with a zero-timeout poll instead.
        var pfd = stackalloc short[4];
        *(int*)pfd = fd;
        pfd[2] = 1; // POLLIN
        pfd[3] = 0;
        return poll(pfd, 1, 0) > 0;
    }

    [System.Runtime.InteropServices.DllImport("libc")]
    private static extern unsafe int poll(short* fds, nuint nfds, int timeout);

    [Fact]
    public void Reset_drops_the_held_buffer_and_stops_the_timer()
    {
        using var h = new BalloonHarness();
        h.Stats.Push(h.StatsBuffer((StatFreeMemory, 1)));
        h.Device.ProcessQueue(StatsQueue);
        h.Device.Reset();
        foreach (var q in h.Queues) q.Reset();
        h.Device.EventSources[0].OnReady(1);
        h.Device.ProcessQueue(InflateQueue);
        Assert.Equal(0, h.Stats.UsedIdx);
        Assert.Equal(1, h.Device.Metrics.EventFails);
        // Stats survive for the API.
        Assert.Equal(1UL, h.Device.GetStats().FreeMemory);
    }

    [Fact]
    public void Activation_with_too_few_queues_fails()
    {
        using var d = new VirtioBalloon(0, false, 1);
        using var mem = Flint.Memory.GuestMemory.Create([(0UL, 0x100000UL)]);
        Assert.False(d.Activate(mem, [new VirtQueue(256), new VirtQueue(256)], new VirtioInterrupt(new CountingInterrupt()), 0));
        Assert.Equal(1, d.Metrics.ActivateFails);
    }

    [Fact]
    public void Random_rings_never_throw()
    {
        using var h = new BalloonHarness(regions: [(0UL, 0x200000UL), (0x300000UL, 0x100000UL)]);
        var rnd = new Random(11);
        var junk = new byte[16 * 16];
        for (int round = 0; round < 300; round++)
        {
            int qi = rnd.Next(0, 3);
            var drv = h.Drivers[qi];
            rnd.NextBytes(junk);
            for (int i = 0; i < 16; i++)
            {
                // Point most buffers at a PFN array area above the rings, with random PFNs in it.
                if (rnd.Next(3) > 0) BitConverter.TryWriteBytes(junk.AsSpan(i * 16, 8), (ulong)rnd.Next(0x20000, 0x30000));
                if (rnd.Next(3) > 0) BitConverter.TryWriteBytes(junk.AsSpan(i * 16 + 8, 4), (uint)rnd.Next(0, 1024));
            }
            h.Memory.Write(drv.Desc, junk);
            var pfns = new byte[0x10000];
            rnd.NextBytes(pfns);
            // Keep PFNs clear of the rings and the arrays themselves (pages below 0x40) so later rounds still parse.
            for (int i = 0; i < pfns.Length; i += 4)
                BitConverter.TryWriteBytes(pfns.AsSpan(i, 4), rnd.Next(4) == 0 ? (uint)rnd.Next() : (uint)rnd.Next(0x40, 0x400));
            h.Memory.Write(0x20000, pfns);
            int n = rnd.Next(1, 5);
            for (int i = 0; i < n; i++) drv.Publish((ushort)rnd.Next(0, 20));
            h.Device.ProcessQueue(qi);
            if (rnd.Next(5) == 0) h.Device.EventSources[0].OnReady(1);
        }
        Assert.True(h.Inflate.UsedIdx > 0);
    }

    [Fact]
    public void Inflate_and_stats_paths_do_not_allocate()
    {
        using var h = new BalloonHarness();
        long allocated = 0;
        for (int i = 0; i < 100; i++)
        {
            h.Inflate.Push(h.PfnArray((uint)(300 + i % 50), (uint)(400 + i % 50), 0xffff_ffff));
            h.Stats.Push(h.StatsBuffer((StatFreeMemory, (ulong)i)));
            long before = GC.GetAllocatedBytesForCurrentThread();
            h.Device.ProcessQueue(InflateQueue);
            h.Device.ProcessQueue(StatsQueue);
            h.Device.EventSources[0].OnReady(1);
            if (i >= 10) allocated += GC.GetAllocatedBytesForCurrentThread() - before;
        }
        Assert.Equal(100, h.Inflate.UsedIdx);
        Assert.Equal(0, allocated);
    }
}
