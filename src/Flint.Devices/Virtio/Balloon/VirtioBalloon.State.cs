using Flint.Snapshot;
using static Flint.Devices.Virtio.Balloon.BalloonConstants;

namespace Flint.Devices.Virtio.Balloon;

/// <summary>
/// The balloon's runtime state in a snapshot, Firecracker's BalloonState (balloon/persist.rs): the target and actual
/// sizes (config space), the stats polling interval (PATCH /balloon/statistics may have changed it), the stats buffer
/// the device holds until its next tick, the latest statistics, and the free page hinting state. Without the held
/// stats buffer a restored guest would wait forever to be handed it back, and statistics would stop.
/// Flint also saves the head of an inflate request it had not finished (it works through a large one in steps): the
/// restored device hands it back to the guest at once; the pages it had not discarded yet stay with the guest.
/// </summary>
public sealed partial class VirtioBalloon
{
    public void SaveRuntimeState(StateWriter w)
    {
        lock (_lock)
        {
            w.U32(TargetPages);
            w.U32(ActualPages);
            w.U32(_statsInterval);
            w.U32(unchecked((uint)_statsHead));
            w.U32(KnownStatCount);
            w.U32((uint)_statPresent);
            foreach (ulong v in _statValues) w.U64(v);
            w.U32(_hintHostCmd);
            w.U32(_hintLastRunId);
            w.U32(_hintGuestCmd);
            w.Bool(_hintGuestCmdSeen);
            w.Bool(_hintAckOnStop);
            w.U32(unchecked((uint)_inflateHead));
        }
    }

    public void RestoreRuntimeState(StateReader r)
    {
        uint target = r.U32(), actual = r.U32(), interval = r.U32();
        int statsHead = Head(r, StatsQueue);
        int stats = r.Count(32);
        uint present = r.U32();
        var values = new ulong[stats];
        for (int i = 0; i < stats; i++) values[i] = r.U64();
        uint hostCmd = r.U32(), lastRun = r.U32(), guestCmd = r.U32();
        bool guestSeen = r.Bool(), ackOnStop = r.Bool();
        int inflateHead = Head(r, InflateQueue);
        r.ExpectEnd();
        // The saved interval must keep the device's queue layout (stats on or off is fixed at build).
        if ((interval == 0) != !StatsEnabled)
            throw new SnapshotFormatException($"Section {r.Section}: stats polling interval {interval} does not fit a balloon built with stats {(StatsEnabled ? "on" : "off")}.");
        if (statsHead >= 0 && !StatsEnabled) throw new SnapshotFormatException($"Section {r.Section}: a stats buffer held by a balloon without stats.");
        lock (_lock)
        {
            Volatile.Write(ref _numPages, target);
            Volatile.Write(ref _actualPages, actual);
            Volatile.Write(ref _statsInterval, interval);
            _statPresent = 0;
            for (int tag = 0; tag < Math.Min(stats, KnownStatCount); tag++)
            {
                _statValues[tag] = values[tag];
                if ((present & (1u << tag)) != 0) _statPresent |= 1 << tag;
            }
            _hintLastRunId = lastRun;
            _hintGuestCmd = guestCmd;
            _hintGuestCmdSeen = guestSeen;
            _hintAckOnStop = ackOnStop;
            // As Firecracker's restore: the hinting state comes back as saved (GET /balloon/hinting/status answers
            // it while the VM stays paused), config space shows DONE, and no interrupt is raised here. The resume
            // that follows (ResetHintingOnResume, Firecracker's kick) makes the host's command DONE and tells the
            // guest, so it may take back the pages it hinted: nothing of the old process's run reaches this one.
            Volatile.Write(ref _hintHostCmd, hostCmd);
            Volatile.Write(ref _hintConfigCmd, HintCmdDone);
            if (!IsActivated || Interrupt is not { } irq) return;
            // Activation (the transport's restore) armed the stats timer with the configured interval and dropped
            // the held buffer: take the saved ones.
            _statsHead = statsHead;
            if (StatsEnabled) ArmStatsTimer();
            if (inflateHead >= 0)
            {
                Queues[InflateQueue].AddUsed((ushort)inflateHead, 0);
                irq.SignalUsedQueue(InflateQueue);
            }
        }
    }

    /// <summary>A saved descriptor head of queue <paramref name="queue"/>: -1 (none), or below the queue's size.</summary>
    private int Head(StateReader r, int queue)
    {
        uint v = r.U32();
        if (v == uint.MaxValue) return -1;
        if (queue >= QueueMaxSizes.Length || v >= QueueMaxSizes[queue])
            throw new SnapshotFormatException($"Section {r.Section}: descriptor head {v} does not fit queue {queue}.");
        return (int)v;
    }
}
