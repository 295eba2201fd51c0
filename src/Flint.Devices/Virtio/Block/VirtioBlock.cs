using System.Runtime.CompilerServices;
using Flint.Devices.Metrics;
using Flint.Devices.RateLimiting;
using Flint.Memory;
using Flint.Sys;
using static Flint.Devices.Virtio.Block.VirtioBlockConstants;

namespace Flint.Devices.Virtio.Block;

/// <summary>
/// virtio-blk over a host file (spec 5.2): one request queue, IN/OUT/FLUSH/GET_ID.
/// A request is a header (device-readable, 16 bytes), data, and a status byte (the last device-writable byte).
/// Each chain is read once into <see cref="ChainBuffers"/> and parsed into a <see cref="BlockRequest"/>; that one copy
/// is judged, charged and executed. Data moves between the file and guest memory through host pointers, no copy.
/// Anything malformed fails only its own request; nothing the guest writes can make this throw or spin.
/// </summary>
// SAFETY: request data and status pointers come from chains validated against guest RAM; the status byte is written once, in bounds.
public sealed unsafe partial class VirtioBlock : VirtioDevice, IEventSources, IDisposable
{
    public const ushort QueueSize = 256;

    private static readonly ushort[] s_queueSizes = [QueueSize];

    // The request being served, read once from its chain: a chain never has more descriptors than the queue size.
    private readonly ChainBuffers _buffers = new(QueueSize);
    private readonly Lock _fileLock = new();
    private readonly string? _serial;
    private BackingFile _file;
    private long _rateLimiterThrottledEvents;
    private long _rateLimiterEventCount;
    // Written when one event served a whole queue's worth of requests and more were pending: the event loop comes
    // back to the rest after its other fds (the API among them), so a guest that keeps the avail ring full, or whose
    // own DMA targets rewrite its avail idx, cannot hold the VMM thread in one handler.
    private readonly EventFd _resume = new();
    private readonly EventSource[] _sources;
    // io_engine Async: the io_uring engine (null: Sync). Its requests complete on its eventfd, one of _sources.
    private readonly AsyncBlockEngine? _async;
    // A request found the engine full and was left on the queue: a completion takes the queue up again (Firecracker's
    // is_io_engine_throttled).
    private bool _engineThrottled;
    private long _ioEngineThrottledEvents;

    /// <summary>How long Reset, a backing-file swap and Dispose wait for requests the kernel still holds.</summary>
    public static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(5);

    /// <param name="path">Disk image or block device.</param>
    /// <param name="readOnly">Open O_RDONLY, offer VIRTIO_BLK_F_RO and fail writes.</param>
    /// <param name="serial">GET_ID answer (first 20 ASCII bytes); null derives it from the file's dev/inode.</param>
    /// <param name="rateLimiter">
    /// Optional; the device owns it from here on (sets its OnUnblocked, disposes it). Pass one (buckets may be null)
    /// when PATCH /drives may add limits later: PATCH updates it in place.
    /// </param>
    /// <param name="writeback">
    /// Firecracker's cache_type: Writeback (true) offers VIRTIO_BLK_F_FLUSH and fdatasyncs the file on a guest flush;
    /// Unsafe (false, the default) does not offer it, so the guest sends no flushes and writes stay in the host's
    /// page cache. A flush from a guest that was not offered the feature is acknowledged without syncing.
    /// </param>
    /// <param name="ioEngine">
    /// Firecracker's io_engine. Async sets up an io_uring for the file and throws <see cref="SysException"/>
    /// (nothing left open) where the host has no usable io_uring.
    /// </param>
    public VirtioBlock(string path, bool readOnly = false, string? serial = null, RateLimiter? rateLimiter = null, bool writeback = false,
        BlockIoEngine ioEngine = BlockIoEngine.Sync)
        : this(path, readOnly, serial, rateLimiter, writeback, ioEngine, AsyncBlockEngine.RingEntries)
    {
    }

    /// <param name="asyncRingEntries">The io_uring's size (tests use a small one to fill it).</param>
    internal VirtioBlock(string path, bool readOnly, string? serial, RateLimiter? rateLimiter, bool writeback,
        BlockIoEngine ioEngine, uint asyncRingEntries)
    {
        IsReadOnly = readOnly;
        IsWriteback = writeback;
        IoEngine = ioEngine;
        _serial = serial;
        _file = BackingFile.Open(path, readOnly, serial);
        if (ioEngine == BlockIoEngine.Async)
        {
            try { _async = new AsyncBlockEngine(_file.Fd, asyncRingEntries); }
            catch { _file.Dispose(); _resume.Dispose(); throw; }
        }
        RateLimiter = rateLimiter;
        if (rateLimiter != null) rateLimiter.OnUnblocked = OnRateLimiterUnblocked;
        var own = new List<EventSource> { new(_resume.Fd, OnResume) };
        if (_async != null) own.Add(new EventSource(_async.CompletionEvent.Fd, OnEngineCompletion));
        _sources = rateLimiter != null ? [.. rateLimiter.EventSources, .. own] : [.. own];
    }

    public BlockIoEngine IoEngine { get; }

    /// <summary>Firecracker's block io_engine_throttled_events: queue notifications that found the engine full.</summary>
    public long IoEngineThrottledEvents => Interlocked.Read(ref _ioEngineThrottledEvents);

    /// <summary>Requests the Async engine has in flight (0 for Sync).</summary>
    public int InFlight { get { lock (_fileLock) return _async?.InFlight ?? 0; } }

    /// <summary>Charges 1 op per request plus the data bytes of reads and writes; null: unlimited.</summary>
    public RateLimiter? RateLimiter { get; }

    /// <summary>The rate limiter's refill timer (with a limiter) and the resume eventfd of a batch cut short.</summary>
    public IReadOnlyList<EventSource> EventSources => _sources;

    /// <summary>Events that stopped after one queue's worth of requests (the queue's size) with more pending.</summary>
    public long BatchesCutShort => Interlocked.Read(ref _batchesCutShort);
    private long _batchesCutShort;

    /// <summary>Firecracker's block rate_limiter_throttled_events: requests left on the queue by the limiter.</summary>
    public long RateLimiterThrottledEvents => Interlocked.Read(ref _rateLimiterThrottledEvents);

    /// <summary>Firecracker's block rate_limiter_event_count: limiter timer events handled.</summary>
    public long RateLimiterEventCount => Interlocked.Read(ref _rateLimiterEventCount);

    public BlockMetrics Metrics { get; } = new();
    public bool IsReadOnly { get; }
    /// <summary>cache_type Writeback: FLUSH offered and honoured with fdatasync.</summary>
    public bool IsWriteback { get; }
    public string Path => Volatile.Read(ref _file).Path;
    public ulong CapacitySectors => Volatile.Read(ref _file).CapacitySectors;

    public override uint DeviceType => VirtioDeviceType.Block;

    /// <summary>
    /// FLUSH (Writeback only) so the guest's fsync reaches the host disk; SEG_MAX so Linux puts many segments in one
    /// request (without it the driver falls back to one segment per request).
    /// </summary>
    public override ulong AvailableFeatures =>
        VirtioFeatures.Version1 | VirtioFeatures.RingEventIdx | (IsWriteback ? 1UL << FeatureFlush : 0) | (1UL << FeatureSegMax) | (IsReadOnly ? 1UL << FeatureReadOnly : 0);

    public override ReadOnlySpan<ushort> QueueMaxSizes => s_queueSizes;

    /// <summary>Largest read: its used length (data plus the status byte) must fit the used ring's u32.</summary>
    public const ulong MaxReadBytes = uint.MaxValue - 1;

    /// <summary>Max data segments in a request: the queue size less the header and status descriptors.</summary>
    public static uint SegMax => QueueSize - 2;

    public override void ReadConfig(ulong offset, Span<byte> data)
    {
        Span<byte> cfg = stackalloc byte[ConfigSize];
        cfg.Clear();
        Unsafe.WriteUnaligned(ref cfg[ConfigCapacity], CapacitySectors);
        Unsafe.WriteUnaligned(ref cfg[ConfigSegMax], SegMax);
        ReadConfigBytes(cfg, offset, data);
    }

    /// <summary>Nothing in our config space is writable (no CONFIG_WCE): count and ignore.</summary>
    public override void WriteConfig(ulong offset, ReadOnlySpan<byte> data) => Interlocked.Increment(ref Metrics.CfgFails);

    protected override void OnActivateFailed() => Interlocked.Increment(ref Metrics.ActivateFails);

    // The limiter's timer resumes the queue outside the transport lock: once Reset has passed this barrier no
    // such run is inside the queue, and later ones see the device inactive.
    // With the Async engine the kernel may still be reading into or out of guest buffers: wait for it (bounded) and
    // drop those completions, as Firecracker's reset does (drain, discard_cqes), so nothing lands after the guest was
    // told the device is reset and no used entry is written into the next activation's rings.
    protected override void OnReset()
    {
        lock (_fileLock)
        {
            _engineThrottled = false;
            if (_async != null && !_async.DrainDiscarding(DrainTimeout))
                Log.Error("reset: io_uring requests still in flight after the drain timeout were abandoned", _async.InFlight);
        }
    }

    /// <summary>
    /// Swaps in a new backing file (PATCH /drives): the new size shows up in config space and the guest is told
    /// through a config-change interrupt. Throws <see cref="Flint.Sys.SysException"/> (drive unchanged) when the
    /// file cannot be opened.
    /// </summary>
    public void UpdateBackingFile(string path)
    {
        var next = BackingFile.Open(path, IsReadOnly, _serial);
        IoUring? ring = null;
        try { ring = _async?.CreateRing(next.Fd); }
        catch { next.Dispose(); throw; }
        BackingFile old;
        VirtioInterrupt? irq = null;
        bool resume = false;
        lock (_fileLock)
        {
            old = _file;
            // The old file's requests finish on the old ring first (they complete to the guest as usual).
            if (_async != null)
            {
                irq = CompleteInFlightLocked(DrainTimeout);
                _async.SwapRing(ring!);
                resume = TakeResume();
            }
            Volatile.Write(ref _file, next);
        }
        old.Dispose();
        irq?.SignalUsedQueue(0);
        if (resume) ProcessAvailable();
        Interlocked.Increment(ref Metrics.UpdateCount);
        NotifyConfigChanged();
    }

    /// <summary>
    /// Serves every available request, then raises one interrupt for the batch if anything completed and the
    /// driver has not suppressed interrupts.
    /// </summary>
    public override void ProcessQueue(int index)
    {
        Interlocked.Increment(ref Metrics.QueueEventCount);
        var irq = Interrupt;
        if (index != 0 || !IsActivated || irq == null)
        {
            Interlocked.Increment(ref Metrics.EventFails);
            Log.Error("notification for an inactive device or unknown queue", index);
            return;
        }
        // Throttled: the limiter's timer resumes the queue.
        if (RateLimiter is { IsBlocked: true }) return;
        // The engine is full: its next completion resumes the queue.
        if (Volatile.Read(ref _engineThrottled))
        {
            Interlocked.Increment(ref _ioEngineThrottledEvents);
            return;
        }
        ProcessAvailable();
    }

    private void OnResume(uint events)
    {
        _resume.Read();
        if (RateLimiter is { IsBlocked: true }) return;
        ProcessAvailable();
    }

    private void OnRateLimiterUnblocked()
    {
        Interlocked.Increment(ref _rateLimiterEventCount);
        ProcessAvailable();
    }

    private void ProcessAvailable()
    {
        VirtQueue q;
        VirtioInterrupt irq;
        bool used = false, throttled = false, notify = false, submitted = false;
        lock (_fileLock)
        {
            if (!IsActivated || Interrupt is not { } i || Queues.Length == 0 || Memory is not { } mem) return;
            irq = i;
            q = Queues[0];
            var rl = RateLimiter;
            int served = 0;
            while (true)
            {
                if (served == q.Size)
                {
                    if (q.PendingCount > 0)
                    {
                        Interlocked.Increment(ref _batchesCutShort);
                        _resume.Write();
                    }
                    break;
                }
                if (!q.TryPop(out var chain)) break;
                served++;
                // Firecracker's remaining_reqs_count: at each pop, the requests still waiting behind this one.
                Interlocked.Add(ref Metrics.RemainingReqsCount, q.PendingCount);
                // The one read of this request from guest memory: everything below uses this copy.
                bool loaded = _buffers.Load(ref chain, mem);
                var request = loaded ? BlockRequest.Parse(_buffers) : default;
                bool viaEngine = _async != null && UsesEngine(request);
                if (viaEngine && !_async!.HasRoom)
                {
                    // Every slot is in flight: leave it on the queue (never dropped) until a completion frees one.
                    q.UndoPop();
                    _engineThrottled = true;
                    throttled = true;
                    break;
                }
                // A request too malformed to run is not charged: it fails without I/O.
                if (rl != null && request.HasStatus && !rl.ConsumeRequest(request.ChargedBytes))
                {
                    // Leave the request on the queue; the limiter's timer brings us back to it (re-read then).
                    q.UndoPop();
                    Interlocked.Increment(ref _rateLimiterThrottledEvents);
                    throttled = true;
                    break;
                }
                if (viaEngine)
                {
                    // Queued: it completes on the engine's eventfd. Refused before any I/O: its status is written.
                    if (Submit(request, chain.HeadIndex)) submitted = true;
                    else
                    {
                        q.AddUsed(chain.HeadIndex, 1);
                        used = true;
                    }
                    continue;
                }
                uint len = Execute(request);
                q.AddUsed(chain.HeadIndex, len);
                used = true;
            }
            if (submitted && _async!.Kick() is < 0 and var err) Log.Error("io_uring submit failed; retried on the next event", -err);
            // Under the lock: with EVENT_IDX the decision updates the queue's notification state.
            notify = used && q.NeedsNotification();
        }
        if (!used)
        {
            if (!throttled && !submitted) Interlocked.Increment(ref Metrics.NoAvailBuffer);
            return;
        }
        if (notify) irq.SignalUsedQueue(0);
    }

    /// <summary>Requests the Async engine runs: reads, writes and (Writeback) flushes; the rest complete at once.</summary>
    private bool UsesEngine(in BlockRequest request) =>
        request.HasStatus && request.IsWellFormed &&
        (request.Type is RequestIn or RequestOut || (request.Type == RequestFlush && IsWriteback));

    /// <summary>
    /// Validates and queues one request on the engine (the caller checked it has room). False: it did not go to the
    /// engine and its status byte is already written (a request that fails validation, as in the Sync path).
    /// </summary>
    private bool Submit(in BlockRequest request, ushort head)
    {
        var engine = _async!;
        byte s = request.Type == RequestFlush ? StatusOk : Validate(request);
        if (s == StatusOk)
        {
            ulong offset = request.Sector << SectorShift;
            bool queued;
            if (request.Type == RequestFlush)
            {
                queued = engine.TrySubmitFlush(head, request.Status);
            }
            else if (request.Type == RequestIn)
            {
                queued = engine.TrySubmitRead(head, request.Status, _buffers.Writer(), request.DataLength, offset);
            }
            else
            {
                var reader = _buffers.Reader();
                reader.Skip(HeaderSize);
                queued = engine.TrySubmitWrite(head, request.Status, reader, request.DataLength, offset);
            }
            if (queued) return true;
            // The caller checked HasRoom, so this is a defect: it costs this request only.
            Interlocked.Increment(ref Metrics.ExecuteFails);
            s = StatusIoErr;
        }
        // SAFETY: Status points at the chain's last device-writable byte, checked when the request was parsed.
        *request.Status = s;
        return false;
    }

    /// <summary>The engine's eventfd: finished requests get their status byte and used entry, then one interrupt.</summary>
    private void OnEngineCompletion(uint events)
    {
        _async!.CompletionEvent.Read();
        bool resume;
        VirtioInterrupt? irq;
        lock (_fileLock)
        {
            irq = ReapLocked();
            resume = TakeResume();
        }
        irq?.SignalUsedQueue(0);
        if (resume) ProcessAvailable();
    }

    /// <summary>True (and cleared) when the queue waited on a free engine slot and one is free now.</summary>
    private bool TakeResume()
    {
        if (!_engineThrottled || !_async!.HasRoom) return false;
        _engineThrottled = false;
        return true;
    }

    /// <summary>
    /// Completes what the engine finished (status bytes, used entries). Returns the interrupt to signal once the lock
    /// is released, or null when the guest need not be told.
    /// </summary>
    private VirtioInterrupt? ReapLocked()
    {
        var engine = _async!;
        // Inactive (a reset in progress): the reset drains and drops these.
        if (!IsActivated || Interrupt is not { } irq || Queues.Length == 0) return null;
        var q = Queues[0];
        bool any = false;
        while (engine.TryComplete(out var done))
        {
            q.AddUsed(done.Head, Finish(done));
            any = true;
        }
        // Requests the kernel did not take on an earlier kick (it was short of memory) go again now.
        if (engine.InFlight > 0) engine.Kick();
        // Under the lock: with EVENT_IDX the decision updates the queue's notification state.
        return any && q.NeedsNotification() ? irq : null;
    }

    /// <summary>Writes a finished request's status byte; returns its used length (data written to the guest, status included).</summary>
    private uint Finish(in EngineCompletion done)
    {
        uint written = 0;
        byte s = StatusOk;
        if (done.Result < 0 || (ulong)done.Result != done.Length)
        {
            Interlocked.Increment(ref Metrics.ExecuteFails);
            if (done.Result < 0) Log.Error("io_uring request failed with errno", -done.Result);
            else Log.Error("io_uring request moved fewer bytes than asked at offset", (long)done.Offset);
            // A short read did fill that much of the guest's buffers.
            if (done.Kind == RequestIn && done.Result > 0) written = (uint)done.Result;
            s = StatusIoErr;
        }
        else if (done.Kind == RequestIn)
        {
            written = (uint)done.Length;
            Interlocked.Increment(ref Metrics.ReadCount);
            Interlocked.Add(ref Metrics.ReadBytes, (long)done.Length);
        }
        else if (done.Kind == RequestOut)
        {
            Interlocked.Increment(ref Metrics.WriteCount);
            Interlocked.Add(ref Metrics.WriteBytes, (long)done.Length);
        }
        else
        {
            Interlocked.Increment(ref Metrics.FlushCount);
        }
        // SAFETY: Status points at the chain's last device-writable byte, checked when the request was parsed; guest
        // memory stays mapped while requests are in flight (Reset and Dispose drain first).
        *done.Status = s;
        return written + 1;
    }

    /// <summary>
    /// Waits, bounded by <paramref name="timeout"/>, until every request the Async engine holds has completed to the
    /// guest (status, used ring, interrupt), taking up requests that waited for a free slot too. For a pause that
    /// must leave nothing half-done, and for tests. True when nothing is left in flight; a no-op for Sync.
    /// </summary>
    public bool CompleteInFlight(TimeSpan timeout)
    {
        if (_async == null) return true;
        long deadline = System.Diagnostics.Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * System.Diagnostics.Stopwatch.Frequency);
        while (true)
        {
            bool resume, idle;
            VirtioInterrupt? irq;
            lock (_fileLock)
            {
                irq = ReapLocked();
                resume = TakeResume();
                idle = _async.InFlight == 0 && !_engineThrottled;
            }
            irq?.SignalUsedQueue(0);
            if (resume)
            {
                ProcessAvailable();
                continue;
            }
            if (idle) return true;
            long left = deadline - System.Diagnostics.Stopwatch.GetTimestamp();
            if (left <= 0) return false;
            lock (_fileLock) _async.Wait(Math.Min(10_000_000, left * 1_000_000_000 / System.Diagnostics.Stopwatch.Frequency));
        }
    }

    /// <summary>
    /// The file swap's drain, the caller holding the lock: completes in-flight requests to the guest, bounded.
    /// Returns the interrupt to signal after the lock, if any completed.
    /// </summary>
    private VirtioInterrupt? CompleteInFlightLocked(TimeSpan timeout)
    {
        var engine = _async!;
        VirtioInterrupt? signal = null;
        if (!IsActivated)
        {
            // Nowhere to complete to (never activated, or reset): nothing should be in flight; drop what is.
            engine.DrainDiscarding(timeout);
            return null;
        }
        long deadline = System.Diagnostics.Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * System.Diagnostics.Stopwatch.Frequency);
        while (true)
        {
            signal = ReapLocked() ?? signal;
            if (engine.InFlight == 0) return signal;
            long left = deadline - System.Diagnostics.Stopwatch.GetTimestamp();
            if (left <= 0)
            {
                Log.Error("backing file swap: io_uring requests still in flight after the drain timeout were abandoned", engine.InFlight);
                return signal;
            }
            engine.Wait(Math.Min(10_000_000, left * 1_000_000_000 / System.Diagnostics.Stopwatch.Frequency));
        }
    }

    /// <summary>Runs one parsed request; returns the used length (bytes written to guest buffers, status included).</summary>
    private uint Execute(in BlockRequest request)
    {
        // No trustworthy status byte: complete with length 0 and write nothing.
        if (!request.HasStatus)
        {
            Interlocked.Increment(ref Metrics.InvalidReqsCount);
            Log.Error("malformed request chain (no status byte)");
            return 0;
        }
        uint written = 0;
        byte s;
        try
        {
            s = Handle(request, out written);
        }
        catch (Exception e)
        {
            // A defect here must cost one request, not the VMM.
            Interlocked.Increment(ref Metrics.ExecuteFails);
            Log.Error("request failed", e.GetType().Name);
            s = StatusIoErr;
        }
        // SAFETY: Status points at the chain's last device-writable byte, checked when the request was parsed.
        *request.Status = s;
        return written + 1;
    }

    private byte Handle(in BlockRequest request, out uint written)
    {
        written = 0;
        if (!request.IsWellFormed) return Invalid(StatusIoErr);
        return request.Type switch
        {
            RequestIn => Read(request, out written),
            RequestOut => Write(request),
            RequestFlush => Flush(),
            RequestGetId => GetId(request, out written),
            _ => Invalid(StatusUnsupported),
        };
    }

    private byte Invalid(byte status)
    {
        Interlocked.Increment(ref Metrics.InvalidReqsCount);
        return status;
    }

    /// <summary>Whole sectors inside the disk.</summary>
    private static bool CheckData(ulong total, ulong sector, ulong capacity) =>
        total % SectorSize == 0 && sector <= capacity && (total >> SectorShift) <= capacity - sector;

    /// <summary>The checks a read or write passes before any I/O, whichever engine runs it; StatusOk when it may run.</summary>
    private byte Validate(in BlockRequest request)
    {
        if (request.Type == RequestOut && IsReadOnly) return Invalid(StatusIoErr);
        if (!CheckData(request.DataLength, request.Sector, _file.CapacitySectors)) return Invalid(StatusIoErr);
        // The used length (data + status byte) is a u32: a read it cannot express is refused, not wrapped.
        if (request.Type == RequestIn && request.DataLength > MaxReadBytes) return Invalid(StatusIoErr);
        return StatusOk;
    }

    /// <summary>A read request, timed into read_agg (Firecracker times the file engine's read the same way).</summary>
    private byte Read(in BlockRequest request, out uint written)
    {
        long start = LatencyAggregate.Start();
        try { return ReadData(request, out written); }
        finally { Metrics.ReadAgg.RecordSince(start); }
    }

    /// <summary>A write request, timed into write_agg.</summary>
    private byte Write(in BlockRequest request)
    {
        long start = LatencyAggregate.Start();
        try { return WriteData(request); }
        finally { Metrics.WriteAgg.RecordSince(start); }
    }

    private byte ReadData(in BlockRequest request, out uint written)
    {
        written = 0;
        var file = _file;
        ulong total = request.DataLength;
        if (Validate(request) is var v && v != StatusOk) return v;
        long offset = (long)(request.Sector << SectorShift);
        var writer = _buffers.Writer();
        while (writer.Written < total && writer.NextPiece(total - writer.Written, out byte* p, out uint len))
        {
            if (!file.ReadAt(p, len, offset))
            {
                Interlocked.Increment(ref Metrics.ExecuteFails);
                Log.Error("read from the backing file failed at offset", offset);
                written = (uint)(writer.Written - len);
                return StatusIoErr;
            }
            offset += len;
        }
        written = (uint)writer.Written;
        Interlocked.Increment(ref Metrics.ReadCount);
        Interlocked.Add(ref Metrics.ReadBytes, (long)total);
        return StatusOk;
    }

    private byte WriteData(in BlockRequest request)
    {
        var file = _file;
        ulong total = request.DataLength;
        if (Validate(request) is var v && v != StatusOk) return v;
        long offset = (long)(request.Sector << SectorShift);
        var reader = _buffers.Reader();
        reader.Skip(HeaderSize);
        while (reader.NextPiece(ulong.MaxValue, out byte* p, out uint len))
        {
            if (!file.WriteAt(p, len, offset))
            {
                Interlocked.Increment(ref Metrics.ExecuteFails);
                Log.Error("write to the backing file failed at offset", offset);
                return StatusIoErr;
            }
            offset += len;
        }
        Interlocked.Increment(ref Metrics.WriteCount);
        Interlocked.Add(ref Metrics.WriteBytes, (long)total);
        return StatusOk;
    }

    private byte Flush()
    {
        if (!IsWriteback) return StatusOk; // cache_type Unsafe: nothing is promised beyond the host page cache
        if (!_file.Flush())
        {
            Interlocked.Increment(ref Metrics.ExecuteFails);
            Log.Error("fdatasync of the backing file failed");
            return StatusIoErr;
        }
        Interlocked.Increment(ref Metrics.FlushCount);
        return StatusOk;
    }

    /// <summary>Copies up to 20 serial bytes into the device-writable data buffers.</summary>
    private byte GetId(in BlockRequest request, out uint written)
    {
        ReadOnlySpan<byte> id = _file.Serial;
        int n = (int)Math.Min(request.DataLength, (ulong)id.Length);
        var writer = _buffers.Writer();
        written = (uint)writer.Write(id[..n]);
        return StatusOk;
    }

    public void Dispose()
    {
        if (_async != null)
        {
            // Guest memory may be unmapped after this: the kernel must be done with every buffer first.
            lock (_fileLock)
            {
                if (!_async.DrainDiscarding(DrainTimeout))
                    Log.Error("dispose: io_uring requests still in flight after the drain timeout", _async.InFlight);
            }
            _async.Dispose();
        }
        _file.Dispose();
        RateLimiter?.Dispose();
        _resume.Dispose();
    }
}
