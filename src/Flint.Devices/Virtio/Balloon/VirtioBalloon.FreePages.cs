using Flint.Memory;
using static Flint.Devices.Virtio.Balloon.BalloonConstants;

namespace Flint.Devices.Virtio.Balloon;

/// <summary>
/// Free page hinting and free page reporting (virtio 1.2 5.5.6.7 and 5.5.6.8), as Firecracker implements them
/// (devices/virtio/balloon/device.rs): every range the guest names goes back to the host with MADV_DONTNEED.
/// <para>
/// Reporting: the guest posts device-writable buffers that are free pages; the device drops them and hands the
/// buffers back. Hinting: the host starts a run by putting a new command id (2 and up) in config space; the guest
/// answers with that id (a 4-byte buffer), then hints free pages, then sends STOP (0). The host ends the run with
/// DONE (1), at once on STOP when the run was started with acknowledge_on_stop, otherwise on PATCH
/// /balloon/hinting/stop; only then may the guest reuse the hinted pages. Hints of a run that is no longer the
/// host's current one (or after DONE/STOP) are acknowledged without dropping anything.
/// </para>
/// <para>
/// Hostile guest: every descriptor is read once (a copy, <see cref="DescriptorChain"/>), the range must lie inside
/// one guest RAM region and start on a page; only the whole pages inside it are dropped, so nothing outside what the
/// guest named (and nothing outside guest RAM) is ever touched. A bad range is counted in *_fails, never fatal.
/// </para>
/// </summary>
// SAFETY: hinted and reported ranges are checked against one RAM region and page alignment before madvise.
public sealed unsafe partial class VirtioBalloon
{
    // Hinting state; written under _lock (API thread and event loop), read by ReadConfig from vCPU threads.
    private uint _hintHostCmd = HintCmdStop;
    // What config space's free_page_hint_cmd_id shows. Equal to _hintHostCmd except after a snapshot restore, where
    // Firecracker shows DONE while the status keeps the saved run until the VM resumes.
    private uint _hintConfigCmd = HintCmdStop;
    private uint _hintLastRunId;
    private uint _hintGuestCmd;
    private bool _hintGuestCmdSeen;
    private bool _hintAckOnStop;

    public bool FreePageHinting { get; }
    public bool FreePageReporting { get; }

    /// <summary>The free page hinting queue's index, or -1 when hinting is off.</summary>
    public int FreePageHintQueue { get; }

    /// <summary>The free page reporting queue's index, or -1 when reporting is off.</summary>
    public int FreePageReportQueue { get; }

    /// <summary>Firecracker's BalloonError::HintingNotEnabled.</summary>
    public const string HintingNotEnabledMessage = "Attempting to use hinting when not enabled";

    /// <summary>
    /// PATCH /balloon/hinting/start: a new run id (the last plus one, skipping the reserved 0 and 1) goes to config
    /// space and the driver hears of it through a config-change interrupt. Throws
    /// <see cref="InvalidOperationException"/> with Firecracker's texts when hinting is off or the driver has not
    /// activated the device.
    /// </summary>
    public void StartHinting(bool acknowledgeOnStop)
    {
        if (!FreePageHinting) throw new InvalidOperationException(HintingNotEnabledMessage);
        lock (_lock)
        {
            RequireActive();
            uint id = unchecked(_hintLastRunId + 1);
            if (id < HintCmdFirstRun) id = HintCmdFirstRun;
            _hintAckOnStop = acknowledgeOnStop;
            _hintLastRunId = id;
            SetHostCmdLocked(id);
        }
    }

    /// <summary>PATCH /balloon/hinting/stop: DONE, so the guest takes its hinted pages back.</summary>
    public void StopHinting()
    {
        if (!FreePageHinting) throw new InvalidOperationException(HintingNotEnabledMessage);
        lock (_lock)
        {
            RequireActive();
            SetHostCmdLocked(HintCmdDone);
        }
    }

    /// <summary>GET /balloon/hinting/status.</summary>
    public BalloonHintingStatus GetHintingStatus()
    {
        if (!FreePageHinting) throw new InvalidOperationException(HintingNotEnabledMessage);
        lock (_lock) return new BalloonHintingStatus(_hintHostCmd, _hintGuestCmdSeen ? _hintGuestCmd : null);
    }

    /// <summary>
    /// Firecracker's Balloon::kick, run on every resume (PATCH /vm Resumed, a snapshot load with resume_vm): an active
    /// balloon with hinting ends whatever run there is with DONE and a config interrupt, so a guest restored mid-run
    /// (or one whose run the host never stopped) may take back the pages it hinted. Nothing when hinting is off or the
    /// driver has not activated the device.
    /// </summary>
    public void ResetHintingOnResume()
    {
        if (!FreePageHinting) return;
        lock (_lock)
        {
            if (!IsActivated || Interrupt == null) return;
            SetHostCmdLocked(HintCmdDone);
        }
    }

    private void RequireActive()
    {
        if (!IsActivated || Interrupt == null) throw new InvalidOperationException(DeviceNotActiveMessage);
    }

    private void SetHostCmdLocked(uint cmd)
    {
        Volatile.Write(ref _hintHostCmd, cmd);
        Volatile.Write(ref _hintConfigCmd, cmd);
        NotifyConfigChanged();
    }

    private void ResetHintingLocked()
    {
        Volatile.Write(ref _hintHostCmd, HintCmdStop);
        Volatile.Write(ref _hintConfigCmd, HintCmdStop);
        _hintLastRunId = 0;
        _hintGuestCmd = 0;
        _hintGuestCmdSeen = false;
        _hintAckOnStop = false;
    }

    /// <summary>The hinting queue: command ids (4-byte buffers) and the hinted free pages of the current run.</summary>
    private bool FreePageHints(VirtQueue q)
    {
        var mem = Memory!;
        bool used = false, complete = false;
        uint hostCmd = _hintHostCmd;
        while (q.TryPop(out var chain))
        {
            while (chain.TryNext(out var d))
            {
                // A command id is exactly 4 bytes (a page range never is); read once from the descriptor's copy.
                if (d.Len == 4)
                {
                    uint cmd = mem.Read<uint>(d.Addr);
                    _hintGuestCmd = cmd;
                    _hintGuestCmdSeen = true;
                    // STOP ends the guest's part of the run; DONE is the host's to send, taken as a stop (Firecracker).
                    complete = cmd is HintCmdStop or HintCmdDone;
                    if (cmd == HintCmdDone) Log.Warn("hinting: the guest sent DONE, treated as STOP");
                    continue;
                }
                // Hints arriving after the host ended the run, without an id, or for an older run: the guest no
                // longer owns that promise, so nothing is dropped.
                if (hostCmd is HintCmdStop or HintCmdDone || !_hintGuestCmdSeen || _hintGuestCmd != hostCmd) continue;
                Interlocked.Increment(ref Metrics.FreePageHintCount);
                if (DiscardRange(mem, d.Addr, d.Len)) Interlocked.Add(ref Metrics.FreePageHintFreed, d.Len);
                else Interlocked.Increment(ref Metrics.FreePageHintFails);
            }
            if (chain.IsBroken) Fail("hinting chain is malformed");
            q.AddUsed(chain.HeadIndex, 0);
            used = true;
        }
        if (complete && _hintAckOnStop) SetHostCmdLocked(HintCmdDone);
        return used;
    }

    /// <summary>The reporting queue: every buffer is a range of free pages to drop.</summary>
    private bool FreePageReports(VirtQueue q)
    {
        var mem = Memory!;
        bool used = false;
        while (q.TryPop(out var chain))
        {
            while (chain.TryNext(out var d))
            {
                Interlocked.Increment(ref Metrics.FreePageReportCount);
                if (DiscardRange(mem, d.Addr, d.Len)) Interlocked.Add(ref Metrics.FreePageReportFreed, d.Len);
                else Interlocked.Increment(ref Metrics.FreePageReportFails);
            }
            if (chain.IsBroken) Fail("reporting chain is malformed");
            q.AddUsed(chain.HeadIndex, 0);
            used = true;
        }
        return used;
    }

    /// <summary>
    /// Drops the whole pages of [gpa, gpa+len) after checking it lies in one guest RAM region and starts on a page
    /// (madvise would refuse an unaligned start; a partial last page is kept, it may hold data the guest did not
    /// name). False when the range is refused or the host call failed.
    /// </summary>
    private bool DiscardRange(GuestMemory mem, ulong gpa, uint len)
    {
        if (len == 0 || (gpa & (PageSize - 1)) != 0 || !mem.IsValidRange(gpa, len))
        {
            Log.Warn("free page range outside guest memory or not page aligned");
            return false;
        }
        ulong whole = len & ~(PageSize - 1);
        if (whole == 0) return true;
        try
        {
            mem.Discard(gpa, whole);
            return true;
        }
        catch (Exception e) when (e is Flint.Sys.SysException or GuestMemoryException)
        {
            Log.Error("discarding free pages failed: " + e.GetType().Name);
            return false;
        }
    }
}
