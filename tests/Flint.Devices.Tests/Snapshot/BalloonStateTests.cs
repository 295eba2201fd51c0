using System.Buffers.Binary;
using Flint.Devices.Tests.Virtio;
using Flint.Devices.Tests.Virtio.Balloon;
using Flint.Devices.Virtio;
using Flint.Devices.Virtio.Balloon;
using Flint.Snapshot;
using static Flint.Devices.Virtio.Balloon.BalloonConstants;

namespace Flint.Devices.Tests.Snapshot;

/// <summary>
/// The balloon saved mid-life and restored on a device built from the configuration over the same guest memory (what
/// a snapshot load does): target, actual, stats interval, the statistics, the stats buffer the device held and the
/// hinting state come back, as Firecracker's balloon/persist.rs restores them.
/// </summary>
public sealed class BalloonStateTests
{
    private const ulong MiB = 1UL << 20;

    /// <summary>A device built as the load builds it (from the configuration), with its transport's queues restored.</summary>
    private static (VirtioBalloon Device, CountingInterrupt Line) Restored(BalloonHarness h, uint amountMib, uint statsS,
        bool hinting, byte[] state)
    {
        var device = new VirtioBalloon(amountMib, false, statsS, hinting);
        var queues = new VirtQueue[h.Queues.Length];
        for (int i = 0; i < queues.Length; i++)
        {
            queues[i] = new VirtQueue(VirtioBalloon.QueueSize);
            h.Drivers[i].Configure(queues[i]);
            queues[i].RestoreCursors(h.Queues[i].NextAvail, h.Queues[i].NextUsed);
        }
        var line = new CountingInterrupt();
        Assert.True(device.Activate(h.Memory, queues, new VirtioInterrupt(line), device.AvailableFeatures));
        device.RestoreRuntimeState(new StateReader("runtime/0", state));
        return (device, line);
    }

    private static uint ConfigCmdId(VirtioBalloon d)
    {
        Span<byte> b = stackalloc byte[4];
        d.ReadConfig(ConfigFreePageHintCmdId, b);
        return BinaryPrimitives.ReadUInt32LittleEndian(b);
    }

    private static ulong CmdId(BalloonHarness h, uint id)
    {
        ulong a = h.Alloc(4);
        h.Memory.Write(a, id);
        return a;
    }

    private static byte[] Save(IDeviceRuntimeState d)
    {
        var w = new StateWriter();
        d.SaveRuntimeState(w);
        return w.ToArray();
    }

    [Fact]
    public void Target_actual_interval_stats_and_the_held_stats_buffer_come_back()
    {
        using var h = new BalloonHarness(amountMib: 4, statsIntervalS: 1);
        h.Device.WriteConfig(ConfigActual, BitConverter.GetBytes(512u));
        h.Device.UpdateTarget(2);                 // PATCH /balloon after boot
        h.Device.UpdateStatsInterval(7);          // PATCH /balloon/statistics
        ushort head = h.Stats.Push(h.StatsBuffer((StatFreeMemory, 123), (StatTotalMemory, 456)));
        h.Device.ProcessQueue(StatsQueue);        // held until the next tick
        Assert.Equal(0, h.Stats.UsedIdx);
        var state = Save(h.Device);

        // Built from the configuration as it was at boot (4 MiB, 1 s): the saved values must win.
        var (d, line) = Restored(h, amountMib: 4, statsS: 1, hinting: false, state);
        using (d)
        {
            Assert.Equal(512u, d.TargetPages);
            Assert.Equal(512u, d.ActualPages);
            Assert.Equal(7u, d.StatsPollingIntervalS);
            var s = d.GetStats();
            Assert.Equal(123UL, s.FreeMemory);
            Assert.Equal(456UL, s.TotalMemory);
            Assert.Null(s.SwapIn);
            // The guest's buffer is still the device's: the next tick (here a new interval) hands it back.
            // Without it the guest would wait for that buffer forever and statistics would stop.
            d.UpdateStatsInterval(9);
            Assert.Equal(1, h.Stats.UsedIdx);
            Assert.Equal((head, 0u), ((ushort)h.Stats.Used(0).Id, h.Stats.Used(0).Len));
            Assert.Equal(1, line.Count);
        }
    }

    [Fact]
    public void A_restored_hinting_run_shows_its_saved_commands_and_DONE_in_config_space_until_the_vm_resumes()
    {
        // Firecracker's Balloon::restore keeps hinting_state (host_cmd, last_cmd_id, guest_cmd, acknowledge_on_stop)
        // as saved and writes DONE to config space's free_page_hint_cmd_id, without an interrupt: GET
        // /balloon/hinting/status after a load that does not resume answers the saved run.
        using var h = new BalloonHarness(amountMib: 0, statsIntervalS: 0, freePageHinting: true);
        h.Device.StartHinting(acknowledgeOnStop: false);
        h.Hinting.Push((CmdId(h, 2), 4, false));
        h.Device.ProcessQueue(h.Device.FreePageHintQueue);
        Assert.Equal(new BalloonHintingStatus(2, 2), h.Device.GetHintingStatus());
        var state = Save(h.Device);

        var (d, line) = Restored(h, 0, 0, hinting: true, state);
        using (d)
        {
            Assert.Equal(new BalloonHintingStatus(2, 2), d.GetHintingStatus());
            Assert.Equal(HintCmdDone, ConfigCmdId(d));
            Assert.Equal(0, line.Count);
        }
    }

    [Fact]
    public void The_resume_after_a_restore_ends_the_run_with_DONE_and_the_next_run_goes_on_from_the_saved_id()
    {
        using var h = new BalloonHarness(amountMib: 0, statsIntervalS: 0, regions: [(0UL, 16 * MiB)], freePageHinting: true);
        h.Device.StartHinting(acknowledgeOnStop: true);
        var state = Save(h.Device);

        var (d, line) = Restored(h, 0, 0, hinting: true, state);
        using (d)
        {
            Assert.Equal(new BalloonHintingStatus(2, null), d.GetHintingStatus());
            d.ResetHintingOnResume(); // Firecracker's kick, on resume_vm
            Assert.Equal(new BalloonHintingStatus(HintCmdDone, null), d.GetHintingStatus());
            Assert.Equal(HintCmdDone, ConfigCmdId(d));
            Assert.Equal(1, line.Count); // the config change tells the guest

            // The run id goes on from the saved one (the guest never sees a repeated id); a run started after the
            // restore works, hints of the old run's id are acknowledged and dropped nothing.
            d.StartHinting(acknowledgeOnStop: true);
            Assert.Equal(3u, ConfigCmdId(d));
            h.Hinting.Push((CmdId(h, 2), 4, false), (8 * MiB, (uint)MiB, true));
            h.Hinting.Push((CmdId(h, 3), 4, false), (4 * MiB, (uint)MiB, true));
            h.Hinting.Push((CmdId(h, HintCmdStop), 4, false));
            d.ProcessQueue(d.FreePageHintQueue);
            Assert.Equal(1, d.Metrics.FreePageHintCount);
            Assert.Equal((long)MiB, d.Metrics.FreePageHintFreed);
            Assert.Equal(new BalloonHintingStatus(HintCmdDone, HintCmdStop), d.GetHintingStatus());
        }
    }

    [Fact]
    public void A_restored_balloon_whose_host_never_started_a_run_shows_DONE_in_config_space_and_DONE_after_resume()
    {
        // Firecracker writes DONE to config space on every restore and its kick sends DONE on every resume of an
        // active hinting balloon, whether or not a run was ever started.
        using var h = new BalloonHarness(amountMib: 0, statsIntervalS: 0, freePageHinting: true);
        var state = Save(h.Device);

        var (d, line) = Restored(h, 0, 0, hinting: true, state);
        using (d)
        {
            Assert.Equal(new BalloonHintingStatus(HintCmdStop, null), d.GetHintingStatus());
            Assert.Equal(HintCmdDone, ConfigCmdId(d));
            d.ResetHintingOnResume();
            Assert.Equal(new BalloonHintingStatus(HintCmdDone, null), d.GetHintingStatus());
            Assert.Equal(1, line.Count);
        }
    }

    [Fact]
    public void An_unfinished_inflate_request_is_handed_back_on_restore()
    {
        using var h = new BalloonHarness(amountMib: 4, statsIntervalS: 0);
        // More PFNs than one event may discard: the request stays in progress.
        var pfns = Enumerable.Range(0, VirtioBalloon.MaxPfnsPerEvent + 10).Select(i => (uint)(i % 1024)).ToArray();
        ushort head = h.Inflate.Push(h.PfnArray(pfns));
        h.Device.ProcessQueue(InflateQueue);
        Assert.Equal(0, h.Inflate.UsedIdx);
        var state = Save(h.Device);

        var (d, _) = Restored(h, 4, 0, hinting: false, state);
        using (d)
        {
            Assert.Equal(1, h.Inflate.UsedIdx);
            Assert.Equal(head, (ushort)h.Inflate.Used(0).Id);
        }
    }

    [Fact]
    public void A_state_that_does_not_fit_the_device_is_refused()
    {
        using var h = new BalloonHarness(amountMib: 4, statsIntervalS: 1);
        var state = Save(h.Device);
        // Built without stats: the saved interval (1 s) cannot apply.
        var device = new VirtioBalloon(4, false, 0);
        using (device)
            Assert.Throws<SnapshotFormatException>(() => device.RestoreRuntimeState(new StateReader("runtime/0", state)));
        // A held stats buffer whose head lies outside the queue.
        var w = new StateWriter();
        w.U32(0); w.U32(0); w.U32(1); w.U32(5000);
        var d2 = new VirtioBalloon(4, false, 1);
        using (d2)
            Assert.Throws<SnapshotFormatException>(() => d2.RestoreRuntimeState(new StateReader("runtime/0", w.ToArray())));
        // Truncated.
        using var d3 = new VirtioBalloon(4, false, 1);
        Assert.Throws<SnapshotFormatException>(() => d3.RestoreRuntimeState(new StateReader("runtime/0", state[..^2])));
    }

    [Fact]
    public void The_runtime_section_keeps_the_config_generation_and_ends_where_its_fields_do()
    {
        using var h = new BalloonHarness(amountMib: 4, statsIntervalS: 0);
        h.Device.UpdateTarget(1);
        h.Device.UpdateTarget(2);
        uint generation = h.Device.ConfigGeneration;
        Assert.NotEqual(0u, generation);
        var w = new StateWriter();
        h.Device.SaveRuntime(w);

        using var d = new VirtioBalloon(4, false, 0);
        d.RestoreRuntime(new StateReader("runtime/0", w.ToArray()));
        Assert.Equal(generation, d.ConfigGeneration);
        Assert.Equal(512u, d.TargetPages);

        w.U8(0); // a trailing byte: a writer this reader does not know
        using var d2 = new VirtioBalloon(4, false, 0);
        Assert.Throws<SnapshotFormatException>(() => d2.RestoreRuntime(new StateReader("runtime/0", w.ToArray())));
    }
}
