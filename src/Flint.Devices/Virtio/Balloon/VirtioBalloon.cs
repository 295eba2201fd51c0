using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Flint.Memory;
using Flint.Sys;
using static Flint.Devices.Virtio.Balloon.BalloonConstants;

namespace Flint.Devices.Virtio.Balloon;

/// <summary>
/// Traditional virtio memory balloon (spec 5.5). Queues: inflate, deflate, then stats when a polling interval is set,
/// free page hinting and free page reporting when enabled, each numbered after those present (as the Linux driver and
/// Firecracker number them). Config space: num_pages (the target, set by the host) and actual (written by the
/// driver), both in 4 KiB pages, and free_page_hint_cmd_id (set by the host; see VirtioBalloon.FreePages.cs).
/// Inflate: the driver posts arrays of u32 PFNs; each page goes back to the host with MADV_DONTNEED (sorted,
/// de-duplicated, coalesced into ranges inside one memory region; PFNs outside guest RAM are skipped and counted).
/// Deflate: the guest takes pages back by touching them, so there is nothing to do but acknowledge.
/// Stats: the driver posts one buffer of (u16 tag, u64 val) entries; the device keeps the values and holds the
/// buffer, handing it back at every polling tick (a periodic timerfd) so the driver refills it.
/// The stats timer runs outside the transport lock and the API thread reads stats, so a device lock serialises them.
/// </summary>
// SAFETY: PFN arrays are read through validated chains; madvise gets ranges checked to lie in one RAM region, page aligned.
public sealed unsafe partial class VirtioBalloon : VirtioDevice, IEventSources, IDisposable, IDeviceRuntimeState
{
    public const ushort QueueSize = 256;

    /// <summary>PFNs gathered before a sort-and-discard pass (a Linux inflate request carries at most 256).</summary>
    public const int PfnBufferSize = 4096;

    /// <summary>
    /// PFNs one event may discard (64 MiB of guest RAM; a Linux inflate request carries 256): bounds the time an
    /// inflate holds the event loop to about a millisecond (64 events for 4 MiB of RAM took 65-115 ms in all on a
    /// heavily loaded 2-core host, where the old single pass took the whole of that in one event).
    /// </summary>
    public const int MaxPfnsPerEvent = 16 * 1024;

    private readonly ushort[] _queueSizes;

    private readonly Lock _lock = new();
    private readonly ChainBuffers _inflateBuffers = new(QueueSize);
    private readonly ChainBuffers _statsBuffers = new(QueueSize);
    private readonly uint[] _pfns = new uint[PfnBufferSize];
    private readonly EventFd _resume = new();
    private ChainReader _inflateReader; // where the inflate request in progress stopped
    private int _inflateHead = -1;      // that request's head; -1: none in progress
    private readonly TimerFd? _statsTimer;
    private readonly EventSource[] _sources;
    private readonly ulong[] _statValues = new ulong[KnownStatCount];
    private int _statPresent; // bit per tag
    private uint _numPages;
    private uint _actualPages;
    private uint _statsInterval;
    private int _statsHead = -1;

    /// <param name="amountMib">Target balloon size in MiB.</param>
    /// <param name="deflateOnOom">Offer VIRTIO_BALLOON_F_DEFLATE_ON_OOM.</param>
    /// <param name="statsPollingIntervalS">0: no stats queue; otherwise the stats polling period in seconds.</param>
    /// <param name="freePageHinting">Offer VIRTIO_BALLOON_F_FREE_PAGE_HINT and its queue.</param>
    /// <param name="freePageReporting">Offer VIRTIO_BALLOON_F_REPORTING and its queue.</param>
    public VirtioBalloon(uint amountMib, bool deflateOnOom, uint statsPollingIntervalS,
        bool freePageHinting = false, bool freePageReporting = false)
    {
        _numPages = MibToPages(amountMib);
        DeflateOnOom = deflateOnOom;
        _statsInterval = statsPollingIntervalS;
        StatsEnabled = statsPollingIntervalS > 0;
        FreePageHinting = freePageHinting;
        FreePageReporting = freePageReporting;
        int next = StatsEnabled ? StatsQueue + 1 : StatsQueue;
        FreePageHintQueue = freePageHinting ? next++ : -1;
        FreePageReportQueue = freePageReporting ? next++ : -1;
        _queueSizes = new ushort[next];
        Array.Fill(_queueSizes, QueueSize);
        var resume = new EventSource(_resume.Fd, OnResume);
        if (StatsEnabled)
        {
            _statsTimer = new TimerFd();
            _sources = [new EventSource(_statsTimer.Fd, OnStatsTimer), resume];
        }
        else _sources = [resume];
    }

    public BalloonMetrics Metrics { get; } = new();
    public bool DeflateOnOom { get; }
    public bool StatsEnabled { get; }

    public uint StatsPollingIntervalS => Volatile.Read(ref _statsInterval);

    /// <summary>Target size in 4 KiB pages (config num_pages).</summary>
    public uint TargetPages => Volatile.Read(ref _numPages);

    /// <summary>Pages the driver says the balloon holds (config actual).</summary>
    public uint ActualPages => Volatile.Read(ref _actualPages);

    public override uint DeviceType => VirtioDeviceType.Balloon;

    public override ulong AvailableFeatures =>
        VirtioFeatures.Version1 | (StatsEnabled ? 1UL << FeatureStatsVq : 0) | (DeflateOnOom ? 1UL << FeatureDeflateOnOom : 0)
        | (FreePageHinting ? 1UL << FeatureFreePageHint : 0) | (FreePageReporting ? 1UL << FeatureReporting : 0);

    public override ReadOnlySpan<ushort> QueueMaxSizes => _queueSizes;

    /// <summary>The stats polling timer (first; only when stats are enabled) and the inflate resume eventfd.</summary>
    public IReadOnlyList<EventSource> EventSources => _sources;

    public override void ReadConfig(ulong offset, Span<byte> data)
    {
        Span<byte> cfg = stackalloc byte[ConfigSize];
        Unsafe.WriteUnaligned(ref cfg[ConfigNumPages], TargetPages);
        Unsafe.WriteUnaligned(ref cfg[ConfigActual], ActualPages);
        Unsafe.WriteUnaligned(ref cfg[ConfigFreePageHintCmdId], Volatile.Read(ref _hintConfigCmd));
        ReadConfigBytes(cfg, offset, data);
    }

    /// <summary>Only <c>actual</c> is the driver's to write (any width, any byte of it); other bytes are ignored.</summary>
    public override void WriteConfig(ulong offset, ReadOnlySpan<byte> data)
    {
        uint actual = ActualPages;
        byte* a = (byte*)&actual;
        bool touched = false;
        for (int i = 0; i < data.Length; i++)
        {
            ulong off = offset + (ulong)i;
            if (off < ConfigActual || off >= ConfigActual + 4) continue;
            a[off - ConfigActual] = data[i];
            touched = true;
        }
        if (touched) Volatile.Write(ref _actualPages, actual);
    }

    /// <summary>
    /// PATCH /balloon: new target; the driver learns it through a config-change interrupt. As Firecracker's
    /// update_size: refused (<see cref="InvalidOperationException"/>, Firecracker's texts) until the driver has
    /// activated the device, and above the guest's memory (the amount named in the message is the one requested,
    /// as Firecracker words it).
    /// </summary>
    public void UpdateTarget(uint amountMib)
    {
        var memory = Memory;
        if (!IsActivated || memory == null) throw new InvalidOperationException(DeviceNotActiveMessage);
        if (amountMib > memory.TotalSize >> 20) throw new InvalidOperationException(TooMuchMemoryMessage(amountMib));
        Volatile.Write(ref _numPages, amountMib * PagesPerMib); // cannot overflow: at most the guest's RAM in pages
        NotifyConfigChanged();
    }

    /// <summary>Firecracker's BalloonError::DeviceNotActive.</summary>
    public const string DeviceNotActiveMessage = "Device not activated yet.";
    /// <summary>Firecracker's BalloonError::StatisticsStateChange.</summary>
    public const string StatisticsStateChangeMessage = "Statistics cannot be enabled/disabled after activation.";
    /// <summary>Firecracker's BalloonError::StatisticsDisabled.</summary>
    public const string StatisticsDisabledMessage = "Received stats query when stats are disabled.";

    /// <summary>Firecracker's BalloonError::TooMuchMemoryRequested.</summary>
    public static string TooMuchMemoryMessage(uint mib) => $"Requested memory should be less than {mib}MiB";

    /// <summary>
    /// PATCH /balloon/statistics. Statistics can be neither enabled after start nor disabled (interval 0):
    /// both throw <see cref="InvalidOperationException"/>. A new interval hands the held buffer back at once
    /// (fresh stats now) and restarts the timer with the new period.
    /// </summary>
    public void UpdateStatsInterval(uint intervalS)
    {
        // Firecracker's order: the same interval is a no-op (even 0 on a device without stats), then a change to or
        // from 0 is refused, whether the driver has activated the device or not.
        if (intervalS == StatsPollingIntervalS) return;
        if (!StatsEnabled || intervalS == 0) throw new InvalidOperationException(StatisticsStateChangeMessage);
        lock (_lock)
        {
            if (intervalS == _statsInterval) return;
            Volatile.Write(ref _statsInterval, intervalS);
            if (!IsActivated) return;
            ReturnStatsBufferLocked();
            ArmStatsTimer();
        }
    }

    /// <summary>GET /balloon.</summary>
    public BalloonConfig GetConfig() =>
        new(TargetPages / PagesPerMib, DeflateOnOom, StatsPollingIntervalS, FreePageHinting, FreePageReporting);

    /// <summary>GET /balloon/statistics. Throws <see cref="InvalidOperationException"/> when stats are disabled.</summary>
    public BalloonStats GetStats()
    {
        if (!StatsEnabled) throw new InvalidOperationException(StatisticsDisabledMessage);
        uint target = TargetPages, actual = ActualPages;
        lock (_lock)
        {
            return new BalloonStats(target, actual, target / PagesPerMib, actual / PagesPerMib,
                Stat(StatSwapIn), Stat(StatSwapOut), Stat(StatMajorFaults), Stat(StatMinorFaults), Stat(StatFreeMemory),
                Stat(StatTotalMemory), Stat(StatAvailableMemory), Stat(StatDiskCaches), Stat(StatHugetlbAllocations),
                Stat(StatHugetlbFailures));
        }
    }

    private ulong? Stat(int tag) => (_statPresent & (1 << tag)) != 0 ? _statValues[tag] : null;

    protected override void OnActivateFailed() => Interlocked.Increment(ref Metrics.ActivateFails);

    protected override void OnActivated()
    {
        lock (_lock)
        {
            _statsHead = -1;
            if (StatsEnabled) ArmStatsTimer();
        }
    }

    protected override void OnReset()
    {
        // Also a barrier: after this no timer handler is inside a queue the transport is about to reset.
        lock (_lock)
        {
            _statsHead = -1;
            _inflateHead = -1;
            _statsTimer?.Arm(TimeSpan.Zero);
            ResetHintingLocked();
        }
    }

    public override void ProcessQueue(int index)
    {
        if (!IsActivated || (uint)index >= (uint)QueueMaxSizes.Length)
        {
            Interlocked.Increment(ref Metrics.EventFails);
            return;
        }
        lock (_lock)
        {
            var irq = Interrupt;
            if (!IsActivated || irq == null) return;
            var q = Queues[index];
            bool used;
            try
            {
                if (index == InflateQueue) Interlocked.Increment(ref Metrics.InflateCount);
                if (index == InflateQueue) used = Inflate(q);
                else if (index == DeflateQueue) used = Deflate(q);
                else if (index == FreePageHintQueue) used = FreePageHints(q);
                else if (index == FreePageReportQueue) used = FreePageReports(q);
                else used = Stats(q);
            }
            catch (Exception e)
            {
                // A defect here must not take the VMM down; whatever was completed is still signalled.
                Fail("queue processing failed: " + e.GetType().Name);
                used = true;
            }
            if (used && q.NeedsNotification()) irq.SignalUsedQueue(index);
        }
    }

    /// <summary>
    /// Discards the pages of inflate requests, at most <see cref="MaxPfnsPerEvent"/> PFNs per call: a request whose
    /// buffer covers all of guest RAM (hundreds of millions of PFNs) must not hold the event loop, and with it the
    /// API and the other devices, for seconds. When the budget runs out the request stays in progress (its chain
    /// already read into <see cref="_inflateBuffers"/>, its reader where it stopped) and the resume eventfd brings
    /// the event loop back to it after whatever else is waiting. Requests behind it wait their turn.
    /// </summary>
    private bool Inflate(VirtQueue q)
    {
        var mem = Memory!;
        bool used = false;
        int budget = MaxPfnsPerEvent;
        while (true)
        {
            if (_inflateHead < 0)
            {
                if (!q.TryPop(out var chain)) break;
                // One read of the chain: the PFN arrays are reached through this copy only.
                if (!_inflateBuffers.Load(ref chain, mem))
                {
                    Fail("inflate chain is malformed");
                    q.AddUsed(chain.HeadIndex, 0);
                    used = true;
                    continue;
                }
                // A PFN array is device-readable and a whole number of u32s; a request that is anything else is
                // acknowledged without discarding a page (which of its numbers were meant is anyone's guess).
                if (_inflateBuffers.WritableCount != 0 || _inflateBuffers.ReadableBytes % 4 != 0)
                {
                    Fail("inflate buffer is device-writable or not whole u32 PFNs");
                    q.AddUsed(chain.HeadIndex, 0);
                    used = true;
                    continue;
                }
                _inflateHead = chain.HeadIndex;
                _inflateReader = _inflateBuffers.Reader();
            }
            while (_inflateReader.Remaining >= 4)
            {
                if (budget == 0)
                {
                    Interlocked.Increment(ref Metrics.InflateResumes);
                    _resume.Write();
                    return used;
                }
                int k = (int)Math.Min((ulong)Math.Min(budget, _pfns.Length), _inflateReader.Remaining / 4);
                // One read of each entry (a block copy): the guest may rewrite the array under us.
                _inflateReader.ReadExact(MemoryMarshal.AsBytes(_pfns.AsSpan(0, k)));
                DiscardPfns(mem, k);
                budget -= k;
            }
            // The pages go before the driver hears the request is done.
            q.AddUsed((ushort)_inflateHead, 0);
            _inflateHead = -1;
            used = true;
        }
        return used;
    }

    /// <summary>The resume eventfd: an inflate request ran out of budget; carry on with it.</summary>
    private void OnResume(uint events)
    {
        _resume.Read();
        lock (_lock)
        {
            var irq = Interrupt;
            if (!IsActivated || irq == null || _inflateHead < 0) return;
            var q = Queues[InflateQueue];
            bool used;
            try { used = Inflate(q); }
            catch (Exception e)
            {
                Fail("inflate failed: " + e.GetType().Name);
                used = true;
            }
            if (used && q.NeedsNotification()) irq.SignalUsedQueue(InflateQueue);
        }
    }

    /// <summary>Sorts the gathered PFNs and discards them as ranges of consecutive pages inside one region.</summary>
    private void DiscardPfns(GuestMemory mem, int count)
    {
        if (count == 0) return;
        var pfns = _pfns.AsSpan(0, count);
        pfns.Sort();
        ulong start = 0, pages = 0;
        uint prev = 0;
        for (int i = 0; i < pfns.Length; i++)
        {
            uint pfn = pfns[i];
            if (pages > 0 && pfn == prev) continue; // duplicate
            ulong gpa = (ulong)pfn << PfnShift;
            if (!mem.IsValidRange(gpa, PageSize))
            {
                Interlocked.Increment(ref Metrics.InvalidPfns);
                continue;
            }
            if (pages > 0 && pfn == prev + 1 && mem.IsValidRange(start, (pages + 1) << PfnShift))
            {
                pages++;
            }
            else
            {
                Discard(mem, start, pages);
                start = gpa;
                pages = 1;
            }
            prev = pfn;
        }
        Discard(mem, start, pages);
    }

    private void Discard(GuestMemory mem, ulong gpa, ulong pages)
    {
        if (pages == 0) return;
        try
        {
            mem.Discard(gpa, pages << PfnShift);
            Interlocked.Add(ref Metrics.DiscardedPages, (long)pages);
        }
        catch (Exception e)
        {
            Fail("discarding guest pages failed: " + e.GetType().Name);
        }
    }

    private bool Deflate(VirtQueue q)
    {
        Interlocked.Increment(ref Metrics.DeflateCount);
        bool used = false;
        while (q.TryPop(out var chain))
        {
            q.AddUsed(chain.HeadIndex, 0);
            used = true;
        }
        return used;
    }

    /// <summary>Reads the driver's stats buffer and holds it until the next polling tick.</summary>
    private bool Stats(VirtQueue q)
    {
        Interlocked.Increment(ref Metrics.StatsUpdatesCount);
        var mem = Memory!;
        Span<byte> entry = stackalloc byte[StatEntrySize];
        bool used = false;
        while (q.TryPop(out var chain))
        {
            // A compliant driver has one buffer out; if it sent another, hand the older one back.
            if (_statsHead >= 0)
            {
                q.AddUsed((ushort)_statsHead, 0);
                used = true;
            }
            _statsHead = chain.HeadIndex;
            // One read of the chain; the entries (u16 tag, u64 value) are read once each from that copy.
            if (!_statsBuffers.Load(ref chain, mem))
            {
                Interlocked.Increment(ref Metrics.StatsUpdateFails);
                continue;
            }
            if (_statsBuffers.WritableCount != 0 || _statsBuffers.ReadableBytes % StatEntrySize != 0)
                Interlocked.Increment(ref Metrics.StatsUpdateFails);
            var reader = _statsBuffers.Reader();
            // At most one entry per possible tag is of use; a longer buffer is read no further than a queue's worth.
            for (int i = 0; i < MaxStatEntries && reader.ReadExact(entry); i++)
            {
                ushort tag = Unsafe.ReadUnaligned<ushort>(ref entry[0]);
                ulong val = Unsafe.ReadUnaligned<ulong>(ref entry[2]);
                // Tags newer than the ten Firecracker reports (OOM kills, reclaim...) are ignored.
                if (tag >= KnownStatCount) continue;
                _statValues[tag] = val;
                _statPresent |= 1 << tag;
            }
        }
        return used;
    }

    // The spec has 16-bit tags: more entries than that in one buffer can only repeat tags.
    private const int MaxStatEntries = 1 << 16;

    private void Fail(string what)
    {
        Interlocked.Increment(ref Metrics.EventFails);
        Log.Error(what);
    }

    private void OnStatsTimer(uint events)
    {
        _statsTimer?.Read();
        lock (_lock)
        {
            if (!IsActivated) return;
            ReturnStatsBufferLocked();
        }
    }

    /// <summary>Hands the held stats buffer back (used length 0) and interrupts so the driver refills it.</summary>
    private void ReturnStatsBufferLocked()
    {
        var irq = Interrupt;
        if (_statsHead < 0 || irq == null || Queues.Length <= StatsQueue) return;
        var q = Queues[StatsQueue];
        q.AddUsed((ushort)_statsHead, 0);
        _statsHead = -1;
        if (q.NeedsNotification()) irq.SignalUsedQueue(StatsQueue);
    }

    private void ArmStatsTimer()
    {
        var period = TimeSpan.FromSeconds(_statsInterval);
        _statsTimer?.Arm(period, period);
    }

    private static uint MibToPages(uint mib)
    {
        if (mib > uint.MaxValue / PagesPerMib)
            throw new ArgumentOutOfRangeException(nameof(mib), mib, "Amount of pages requested is too large.");
        return mib * PagesPerMib;
    }

    public void Dispose()
    {
        _statsTimer?.Dispose();
        _resume.Dispose();
    }
}
