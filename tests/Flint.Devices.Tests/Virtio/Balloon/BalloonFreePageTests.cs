using System.Buffers.Binary;
using System.Globalization;
using Flint.Devices.Virtio;
using Flint.Devices.Virtio.Balloon;
using static Flint.Devices.Virtio.Balloon.BalloonConstants;

namespace Flint.Devices.Tests.Virtio.Balloon;

/// <summary>
/// Free page reporting and hinting driven as the Linux driver drives them (drivers/virtio/virtio_balloon.c): reports
/// are device-writable page ranges; a hinting run is a 4-byte command id, the hinted ranges, then STOP.
/// </summary>
public sealed unsafe class BalloonFreePageTests
{
    private const ulong MiB = 1UL << 20;

    [Fact]
    public void Queues_follow_the_negotiated_features_in_spec_order()
    {
        using var both = new VirtioBalloon(0, false, 0, freePageHinting: true, freePageReporting: true);
        Assert.Equal(VirtioFeatures.Version1 | 1UL << 3 | 1UL << 5, both.AvailableFeatures);
        Assert.Equal(4, both.QueueMaxSizes.Length);
        Assert.Equal((2, 3), (both.FreePageHintQueue, both.FreePageReportQueue));

        using var all = new VirtioBalloon(0, true, 1, freePageHinting: true, freePageReporting: true);
        Assert.Equal(5, all.QueueMaxSizes.Length);
        Assert.Equal((3, 4), (all.FreePageHintQueue, all.FreePageReportQueue));

        using var reportOnly = new VirtioBalloon(0, false, 1, freePageReporting: true);
        Assert.Equal(4, reportOnly.QueueMaxSizes.Length);
        Assert.Equal((-1, 3), (reportOnly.FreePageHintQueue, reportOnly.FreePageReportQueue));

        using var none = new VirtioBalloon(0, false, 0);
        Assert.Equal((-1, -1), (none.FreePageHintQueue, none.FreePageReportQueue));
        Assert.Equal(new BalloonConfig(0, true, 1, true, true), all.GetConfig());
        Assert.Equal("""{"amount_mib":0,"deflate_on_oom":true,"stats_polling_interval_s":1,"free_page_hinting":true,"free_page_reporting":true}""",
            all.GetConfig().ToJson());
    }

    [Fact]
    public void Reported_pages_leave_the_process_RSS()
    {
        using var h = new BalloonHarness(statsIntervalS: 0, regions: [(0UL, 64 * MiB)], freePageReporting: true);
        ulong start = 16 * MiB, len = 16 * MiB;
        h.Memory.Fill(start, len, 0xa5);
        byte* host = h.Memory.GetHostPointer(start, len);
        long before = ResidentPages(host, len);
        Assert.Equal((long)(len / 4096), before);

        // Four 4 MiB reports in one chain (the driver sends up to 32 per request), all device-writable.
        h.Reporting.Push((start, 4 * (uint)MiB, true), (start + 4 * MiB, 4 * (uint)MiB, true),
            (start + 8 * MiB, 4 * (uint)MiB, true), (start + 12 * MiB, 4 * (uint)MiB, true));
        h.Device.ProcessQueue(h.Device.FreePageReportQueue);

        Assert.Equal(0, ResidentPages(host, len));
        Assert.Equal(0, h.Memory.Read<byte>(start + 5 * MiB)); // the guest sees zeroes on next touch
        Assert.Single(h.Reporting.TakeUsed());
        Assert.Equal(4, h.Device.Metrics.FreePageReportCount);
        Assert.Equal((long)len, h.Device.Metrics.FreePageReportFreed);
        Assert.Equal(0, h.Device.Metrics.FreePageReportFails);
        Assert.True(h.Interrupt.Status != 0);
    }

    [Fact]
    public void Hostile_reports_touch_nothing_outside_what_the_guest_named()
    {
        // Two regions with a hole between them, as below and above the 32-bit MMIO gap.
        using var h = new BalloonHarness(statsIntervalS: 0, regions: [(0UL, 4 * MiB), (8 * MiB, 4 * MiB)], freePageReporting: true);
        h.Memory.Fill(3 * MiB, MiB, 0x11);
        h.Memory.Fill(8 * MiB, 4 * MiB, 0x22);

        h.Reporting.Push((3 * MiB + 8, 4096, true));        // not page aligned
        h.Reporting.Push((3 * MiB, (uint)(2 * MiB), true)); // runs off the end of the first region
        h.Reporting.Push((5 * MiB, 4096, true));            // in the hole
        h.Reporting.Push((ulong.MaxValue - 4095, 4096, true)); // wraps
        h.Reporting.Push((8 * MiB, 4096 + 100, true));      // a page and a bit: the partial page stays
        h.Reporting.Push((9 * MiB, 0, true));               // empty
        h.Device.ProcessQueue(h.Device.FreePageReportQueue);

        Assert.Equal(6, h.Reporting.TakeUsed().Count); // every buffer is handed back
        Assert.Equal(0x11, h.Memory.Read<byte>(3 * MiB));
        Assert.Equal(0x11, h.Memory.Read<byte>(4 * MiB - 1));
        Assert.Equal(0, h.Memory.Read<byte>(8 * MiB));          // the whole page went
        Assert.Equal(0x22, h.Memory.Read<byte>(8 * MiB + 4096)); // the partial one did not
        Assert.Equal(0x22, h.Memory.Read<byte>(9 * MiB));
        // Chains whose descriptor lies outside guest RAM are broken before the device sees the range.
        Assert.True(h.Device.Metrics.FreePageReportFails + h.Device.Metrics.EventFails >= 4);
        Assert.Equal(4096 + 100, h.Device.Metrics.FreePageReportFreed);
    }

    [Fact]
    public void Hinting_run_drops_hinted_pages_and_acknowledges_stop()
    {
        using var h = new BalloonHarness(statsIntervalS: 0, regions: [(0UL, 32 * MiB)], freePageHinting: true);
        Assert.Equal(new BalloonHintingStatus(HintCmdStop, null), h.Device.GetHintingStatus());
        Assert.Equal("""{"host_cmd":0,"guest_cmd":null}""", h.Device.GetHintingStatus().ToJson());

        h.Device.StartHinting(acknowledgeOnStop: true);
        Assert.Equal(2u, ConfigCmdId(h));
        Assert.Equal(VirtioInterrupt.ConfigChange, h.Interrupt.Status & VirtioInterrupt.ConfigChange);

        h.Memory.Fill(8 * MiB, 8 * MiB, 0x5a);
        byte* host = h.Memory.GetHostPointer(8 * MiB, 8 * MiB);
        // The driver answers with the run's id (device-readable u32), then hints (device-writable ranges).
        h.Hinting.Push((CmdId(h, 2), 4, false));
        h.Hinting.Push((8 * MiB, 4 * (uint)MiB, true), (12 * MiB, 4 * (uint)MiB, true));
        h.Device.ProcessQueue(h.Device.FreePageHintQueue);
        Assert.Equal(0, ResidentPages(host, 8 * MiB));
        Assert.Equal(2, h.Device.Metrics.FreePageHintCount);
        Assert.Equal((long)(8 * MiB), h.Device.Metrics.FreePageHintFreed);
        Assert.Equal(new BalloonHintingStatus(2, 2), h.Device.GetHintingStatus());

        // STOP from the guest: acknowledge_on_stop sends DONE at once.
        h.Hinting.Push((CmdId(h, HintCmdStop), 4, false));
        h.Device.ProcessQueue(h.Device.FreePageHintQueue);
        Assert.Equal(new BalloonHintingStatus(HintCmdDone, HintCmdStop), h.Device.GetHintingStatus());
        Assert.Equal(HintCmdDone, ConfigCmdId(h));
        Assert.Equal(3, h.Hinting.TakeUsed().Count);
    }

    [Fact]
    public void Every_resume_ends_a_hinting_run_with_DONE_as_Firecracker_kicks_its_balloon()
    {
        using var h = new BalloonHarness(statsIntervalS: 0, freePageHinting: true);
        h.Device.StartHinting(acknowledgeOnStop: false);
        int interrupts = h.Line.Count;
        h.Device.ResetHintingOnResume(); // PATCH /vm Resumed after a pause
        Assert.Equal(new BalloonHintingStatus(HintCmdDone, null), h.Device.GetHintingStatus());
        Assert.Equal(HintCmdDone, ConfigCmdId(h));
        Assert.Equal(interrupts + 1, h.Line.Count);

        // Without hinting, or before the driver activated the device, a resume changes nothing.
        using var off = new BalloonHarness(statsIntervalS: 0);
        int offInterrupts = off.Line.Count;
        off.Device.ResetHintingOnResume();
        Assert.Equal(offInterrupts, off.Line.Count);
        using var inactive = new VirtioBalloon(0, false, 0, freePageHinting: true);
        inactive.ResetHintingOnResume();
        Assert.Equal(new BalloonHintingStatus(HintCmdStop, null), inactive.GetHintingStatus());
    }

    [Fact]
    public void Hints_outside_the_current_run_are_ignored()
    {
        using var h = new BalloonHarness(statsIntervalS: 0, regions: [(0UL, 16 * MiB)], freePageHinting: true);
        h.Memory.Fill(4 * MiB, 4 * MiB, 0x33);

        // No run: hints are acknowledged, nothing dropped.
        h.Hinting.Push((4 * MiB, (uint)MiB, true));
        h.Device.ProcessQueue(h.Device.FreePageHintQueue);
        Assert.Equal(0x33, h.Memory.Read<byte>(4 * MiB));

        h.Device.StartHinting(acknowledgeOnStop: false); // run 2
        h.Device.StartHinting(acknowledgeOnStop: false); // run 3 replaces it
        Assert.Equal(3u, ConfigCmdId(h));
        // Hints following the old run's id, and hints before any id of this run.
        h.Hinting.Push((CmdId(h, 2), 4, false), (4 * MiB, (uint)MiB, true));
        h.Device.ProcessQueue(h.Device.FreePageHintQueue);
        Assert.Equal(0x33, h.Memory.Read<byte>(4 * MiB));
        Assert.Equal(0, h.Device.Metrics.FreePageHintCount);

        // Without acknowledge_on_stop the host keeps the run until PATCH /balloon/hinting/stop.
        h.Hinting.Push((CmdId(h, HintCmdStop), 4, false));
        h.Device.ProcessQueue(h.Device.FreePageHintQueue);
        Assert.Equal(new BalloonHintingStatus(3, HintCmdStop), h.Device.GetHintingStatus());
        h.Device.StopHinting();
        Assert.Equal(new BalloonHintingStatus(HintCmdDone, HintCmdStop), h.Device.GetHintingStatus());

        // After DONE, late hints of run 3 drop nothing either.
        h.Hinting.Push((CmdId(h, 3), 4, false), (4 * MiB, (uint)MiB, true));
        h.Device.ProcessQueue(h.Device.FreePageHintQueue);
        Assert.Equal(0x33, h.Memory.Read<byte>(4 * MiB));
        Assert.Equal(4, h.Hinting.TakeUsed().Count);
    }

    [Fact]
    public void Hints_under_an_id_the_host_never_issued_or_after_the_guests_stop_drop_nothing()
    {
        using var h = new BalloonHarness(statsIntervalS: 0, regions: [(0UL, 16 * MiB)], freePageHinting: true);
        h.Memory.Fill(4 * MiB, 4 * MiB, 0x44);
        h.Device.StartHinting(acknowledgeOnStop: false); // run 2

        // An id the host never put in config space (a guest guessing ahead, or garbage): its hints are not the run's.
        h.Hinting.Push((CmdId(h, 77), 4, false), (4 * MiB, (uint)MiB, true));
        h.Device.ProcessQueue(h.Device.FreePageHintQueue);
        Assert.Equal(0x44, h.Memory.Read<byte>(4 * MiB));
        Assert.Equal(new BalloonHintingStatus(2, 77), h.Device.GetHintingStatus());

        // The run's own id: now its hints go.
        h.Hinting.Push((CmdId(h, 2), 4, false), (4 * MiB, (uint)MiB, true));
        h.Device.ProcessQueue(h.Device.FreePageHintQueue);
        Assert.Equal(0, h.Memory.Read<byte>(4 * MiB));

        // STOP, then hints before the host's DONE: the guest has ended its part, so they drop nothing.
        h.Hinting.Push((CmdId(h, HintCmdStop), 4, false), (5 * MiB, (uint)MiB, true));
        h.Device.ProcessQueue(h.Device.FreePageHintQueue);
        Assert.Equal(0x44, h.Memory.Read<byte>(5 * MiB));
        Assert.Equal(new BalloonHintingStatus(2, HintCmdStop), h.Device.GetHintingStatus());
        Assert.Equal(2u, ConfigCmdId(h)); // no DONE without acknowledge_on_stop

        // DONE is the host's word; a guest sending it ends its part as STOP does (Firecracker), here acknowledged.
        h.Device.StartHinting(acknowledgeOnStop: true); // run 3
        h.Hinting.Push((CmdId(h, 3), 4, false), (CmdId(h, HintCmdDone), 4, false), (6 * MiB, (uint)MiB, true));
        h.Device.ProcessQueue(h.Device.FreePageHintQueue);
        Assert.Equal(0x44, h.Memory.Read<byte>(6 * MiB));
        Assert.Equal(new BalloonHintingStatus(HintCmdDone, HintCmdDone), h.Device.GetHintingStatus());
        Assert.Equal(1, h.Device.Metrics.FreePageHintCount);
        Assert.Equal((long)MiB, h.Device.Metrics.FreePageHintFreed);
        Assert.Equal(4, h.Hinting.TakeUsed().Count);
    }

    [Fact]
    public void Hostile_hinted_ranges_touch_nothing_outside_what_the_guest_named()
    {
        // Two regions that touch at 4 MiB, then a hole, then a third: a range must lie inside one region.
        using var h = new BalloonHarness(statsIntervalS: 0, regions: [(0UL, 4 * MiB), (4 * MiB, 4 * MiB), (12 * MiB, 4 * MiB)],
            freePageHinting: true);
        h.Memory.Fill(3 * MiB, MiB, 0x11);
        h.Memory.Fill(4 * MiB, 4 * MiB, 0x22);
        h.Memory.Fill(12 * MiB, 4 * MiB, 0x33);
        h.Device.StartHinting(acknowledgeOnStop: true);
        h.Hinting.Push((CmdId(h, 2), 4, false));
        h.Hinting.Push((3 * MiB, (uint)(2 * MiB), true));      // across the two touching regions
        h.Hinting.Push((4 * MiB + 512, 4096, true));            // not page aligned
        h.Hinting.Push((7 * MiB, (uint)(2 * MiB), true));      // runs into the hole
        h.Hinting.Push((9 * MiB, 4096, true));                  // in the hole
        h.Hinting.Push((ulong.MaxValue - 4095, 8192, true));    // wraps
        h.Hinting.Push((16 * MiB, 4096, true));                 // just past the end of RAM
        h.Hinting.Push((12 * MiB, 4096 + 1, true));             // a page and a byte: only the page goes
        h.Device.ProcessQueue(h.Device.FreePageHintQueue);

        Assert.Equal(8, h.Hinting.TakeUsed().Count); // every buffer is handed back
        Assert.Equal(0x11, h.Memory.Read<byte>(3 * MiB));
        Assert.Equal(0x11, h.Memory.Read<byte>(4 * MiB - 1));
        Assert.Equal(0x22, h.Memory.Read<byte>(4 * MiB));
        Assert.Equal(0x22, h.Memory.Read<byte>(4 * MiB + 4096));
        Assert.Equal(0x22, h.Memory.Read<byte>(8 * MiB - 1));
        Assert.Equal(0, h.Memory.Read<byte>(12 * MiB));
        Assert.Equal(0x33, h.Memory.Read<byte>(12 * MiB + 4096));
        // Ranges outside guest RAM break their chain before the device sees them; the others count as fails.
        Assert.True(h.Device.Metrics.FreePageHintFails + h.Device.Metrics.EventFails >= 6);
        Assert.Equal(4096 + 1, h.Device.Metrics.FreePageHintFreed);
        Assert.True(h.Device.IsActivated); // nothing here is fatal
    }

    [Fact]
    public void Hinting_API_is_refused_when_off_or_not_activated()
    {
        using var h = new BalloonHarness(statsIntervalS: 0);
        foreach (var call in new Action[] { () => h.Device.StartHinting(true), h.Device.StopHinting, () => h.Device.GetHintingStatus() })
            Assert.Equal("Attempting to use hinting when not enabled", Assert.Throws<InvalidOperationException>(call).Message);

        using var idle = new VirtioBalloon(0, false, 0, freePageHinting: true);
        Assert.Equal("Device not activated yet.", Assert.Throws<InvalidOperationException>(() => idle.StartHinting(true)).Message);
        Assert.Equal("Device not activated yet.", Assert.Throws<InvalidOperationException>(idle.StopHinting).Message);
        Assert.Equal(new BalloonHintingStatus(0, null), idle.GetHintingStatus());
    }

    [Fact]
    public void Reset_forgets_the_run()
    {
        using var h = new BalloonHarness(statsIntervalS: 0, freePageHinting: true);
        h.Device.StartHinting(true);
        h.Device.Reset();
        Assert.Equal(new BalloonHintingStatus(0, null), h.Device.GetHintingStatus());
        Assert.Equal(0u, ConfigCmdId(h));
    }

    private static uint ConfigCmdId(BalloonHarness h)
    {
        Span<byte> b = stackalloc byte[4];
        h.Device.ReadConfig(ConfigFreePageHintCmdId, b);
        return BinaryPrimitives.ReadUInt32LittleEndian(b);
    }

    private static ulong CmdId(BalloonHarness h, uint id)
    {
        ulong a = h.Alloc(4);
        h.Memory.Write(a, id);
        return a;
    }

    /// <summary>Resident pages of [p, p+len) by /proc/self/smaps is too coarse (whole VMAs); mincore is exact.</summary>
    private static long ResidentPages(byte* p, ulong len) => Flint.Sys.Libc.ResidentPages(p, len);
}
