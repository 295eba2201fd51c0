using System.Runtime.CompilerServices;
using Flint.Devices.RateLimiting;
using Flint.Memory;
using static Flint.Devices.Virtio.Block.VirtioBlockConstants;

namespace Flint.Devices.Virtio.Block;

/// <summary>
/// virtio-blk over a host file (spec 5.2): one request queue, IN/OUT/FLUSH/GET_ID.
/// A request is a header descriptor (device-readable, 16 bytes), data descriptors, and a device-writable
/// descriptor whose last byte receives the status. Each chain is collected and judged whole before any I/O;
/// data moves between the file and guest memory through host pointers with no copy.
/// Anything malformed fails only its own request; nothing the guest writes can make this throw or spin.
/// </summary>
public sealed unsafe class VirtioBlock : VirtioDevice, IEventSources, IDisposable
{
    public const ushort QueueSize = 256;

    private static readonly ushort[] s_queueSizes = [QueueSize];

    // Scratch for the chain being served: a chain never has more descriptors than the queue size.
    private readonly Descriptor[] _chain = new Descriptor[QueueSize];
    private readonly Lock _fileLock = new();
    private readonly string? _serial;
    private BackingFile _file;
    private long _rateLimiterThrottledEvents;
    private long _rateLimiterEventCount;

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
    public VirtioBlock(string path, bool readOnly = false, string? serial = null, RateLimiter? rateLimiter = null, bool writeback = false)
    {
        IsReadOnly = readOnly;
        IsWriteback = writeback;
        _serial = serial;
        _file = BackingFile.Open(path, readOnly, serial);
        RateLimiter = rateLimiter;
        if (rateLimiter != null) rateLimiter.OnUnblocked = OnRateLimiterUnblocked;
    }

    /// <summary>Charges 1 op per request plus the data bytes of reads and writes; null: unlimited.</summary>
    public RateLimiter? RateLimiter { get; }

    /// <summary>The rate limiter's refill timer, for the event loop (none without a limiter).</summary>
    public IReadOnlyList<EventSource> EventSources => RateLimiter?.EventSources ?? [];

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
    protected override void OnReset() { lock (_fileLock) { } }

    /// <summary>
    /// Swaps in a new backing file (PATCH /drives): the new size shows up in config space and the guest is told
    /// through a config-change interrupt. Throws <see cref="Flint.Sys.SysException"/> (drive unchanged) when the
    /// file cannot be opened.
    /// </summary>
    public void UpdateBackingFile(string path)
    {
        var next = BackingFile.Open(path, IsReadOnly, _serial);
        BackingFile old;
        lock (_fileLock)
        {
            old = _file;
            Volatile.Write(ref _file, next);
        }
        old.Dispose();
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
            return;
        }
        // Throttled: the limiter's timer resumes the queue.
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
        bool used = false, throttled = false, notify = false;
        lock (_fileLock)
        {
            if (!IsActivated || Interrupt is not { } i || Queues.Length == 0) return;
            irq = i;
            q = Queues[0];
            var rl = RateLimiter;
            while (q.TryPop(out var chain))
            {
                if (rl != null && !TryCharge(rl, chain))
                {
                    // Leave the request on the queue; the limiter's timer brings us back to it.
                    q.NextAvail = (ushort)(q.NextAvail - 1);
                    Interlocked.Increment(ref _rateLimiterThrottledEvents);
                    throttled = true;
                    break;
                }
                uint len = Execute(ref chain);
                q.AddUsed(chain.HeadIndex, len);
                used = true;
            }
            // Under the lock: with EVENT_IDX the decision updates the queue's notification state.
            notify = used && q.NeedsNotification();
        }
        if (!used)
        {
            if (!throttled) Interlocked.Increment(ref Metrics.NoAvailBuffer);
            return;
        }
        if (notify) irq.SignalUsedQueue();
    }

    /// <summary>
    /// Firecracker's charge: 1 op, plus the data bytes for reads and writes (the op is given back when the bytes
    /// are refused). A request too malformed to run is not charged: it fails without I/O. The chain is a copy,
    /// so walking it here leaves the caller's walk untouched.
    /// </summary>
    private bool TryCharge(RateLimiter rl, DescriptorChain probe)
    {
        int n = probe.CollectInto(_chain);
        if (n < 2) return true;
        var h = _chain[0];
        byte* hp = h.IsWriteOnly || h.Len < HeaderSize ? null : Memory!.TryGetHostPointer(h.Addr, HeaderSize);
        if (hp == null) return true;
        uint type = Unsafe.ReadUnaligned<uint>(hp);
        ulong bytes = 0;
        if (type == RequestIn || type == RequestOut)
            for (int i = 1; i < n - 1; i++) bytes += _chain[i].Len;
        return rl.ConsumeRequest(bytes);
    }

    /// <summary>Runs one request; returns the used length (bytes written to guest buffers, status included).</summary>
    private uint Execute(ref DescriptorChain chain)
    {
        try
        {
            var mem = Memory!;
            int n = chain.CollectInto(_chain);
            // No trustworthy status descriptor: complete with length 0 and write nothing.
            if (n < 2)
            {
                Interlocked.Increment(ref Metrics.InvalidReqsCount);
                return 0;
            }
            var st = _chain[n - 1];
            if (!st.IsWriteOnly || st.Len == 0)
            {
                Interlocked.Increment(ref Metrics.InvalidReqsCount);
                return 0;
            }
            // The status is the last byte of the request, i.e. of its last descriptor.
            byte* status = mem.TryGetHostPointer(st.Addr + st.Len - 1, 1);
            if (status == null) return 0; // unreachable: the chain validated the range
            byte s = Handle(mem, n, out uint written);
            *status = s;
            return written + 1;
        }
        catch (Exception)
        {
            // A defect here must cost one request, not the VMM.
            Interlocked.Increment(ref Metrics.ExecuteFails);
            return 0;
        }
    }

    private byte Handle(GuestMemory mem, int n, out uint written)
    {
        written = 0;
        var h = _chain[0];
        if (h.IsWriteOnly || h.Len < HeaderSize) return Invalid(StatusIoErr);
        byte* hp = mem.TryGetHostPointer(h.Addr, HeaderSize);
        if (hp == null) return Invalid(StatusIoErr);
        // One copy of each field: the guest may rewrite the header while we work.
        uint type = Unsafe.ReadUnaligned<uint>(hp);
        ulong sector = Unsafe.ReadUnaligned<ulong>(hp + 8);
        var data = new ReadOnlySpan<Descriptor>(_chain, 1, n - 2);
        return type switch
        {
            RequestIn => Read(mem, data, sector, out written),
            RequestOut => Write(mem, data, sector),
            RequestFlush => Flush(),
            RequestGetId => GetId(mem, data, out written),
            _ => Invalid(StatusUnsupported),
        };
    }

    private byte Invalid(byte status)
    {
        Interlocked.Increment(ref Metrics.InvalidReqsCount);
        return status;
    }

    /// <summary>Total data length when every descriptor has the required direction, and it is whole sectors inside the disk.</summary>
    private bool CheckData(ReadOnlySpan<Descriptor> data, bool deviceWrites, ulong sector, ulong capacity, out ulong total)
    {
        total = 0;
        foreach (ref readonly var d in data)
        {
            if (d.IsWriteOnly != deviceWrites) return false;
            total += d.Len; // at most 254 x 4 GiB: no overflow
        }
        if (total % SectorSize != 0) return false;
        return sector <= capacity && (total >> SectorShift) <= capacity - sector;
    }

    private byte Read(GuestMemory mem, ReadOnlySpan<Descriptor> data, ulong sector, out uint written)
    {
        written = 0;
        var file = _file;
        if (!CheckData(data, deviceWrites: true, sector, file.CapacitySectors, out ulong total)) return Invalid(StatusIoErr);
        long offset = (long)(sector << SectorShift);
        foreach (ref readonly var d in data)
        {
            if (d.Len == 0) continue;
            byte* p = mem.TryGetHostPointer(d.Addr, d.Len);
            if (p == null || !file.ReadAt(p, d.Len, offset))
            {
                Interlocked.Increment(ref Metrics.ExecuteFails);
                return StatusIoErr;
            }
            written += d.Len;
            offset += d.Len;
        }
        Interlocked.Increment(ref Metrics.ReadCount);
        Interlocked.Add(ref Metrics.ReadBytes, (long)total);
        return StatusOk;
    }

    private byte Write(GuestMemory mem, ReadOnlySpan<Descriptor> data, ulong sector)
    {
        if (IsReadOnly) return Invalid(StatusIoErr);
        var file = _file;
        if (!CheckData(data, deviceWrites: false, sector, file.CapacitySectors, out ulong total)) return Invalid(StatusIoErr);
        long offset = (long)(sector << SectorShift);
        foreach (ref readonly var d in data)
        {
            if (d.Len == 0) continue;
            byte* p = mem.TryGetHostPointer(d.Addr, d.Len);
            if (p == null || !file.WriteAt(p, d.Len, offset))
            {
                Interlocked.Increment(ref Metrics.ExecuteFails);
                return StatusIoErr;
            }
            offset += d.Len;
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
            return StatusIoErr;
        }
        Interlocked.Increment(ref Metrics.FlushCount);
        return StatusOk;
    }

    /// <summary>Copies up to 20 serial bytes into the device-writable data buffers.</summary>
    private byte GetId(GuestMemory mem, ReadOnlySpan<Descriptor> data, out uint written)
    {
        written = 0;
        foreach (ref readonly var d in data)
            if (!d.IsWriteOnly) return Invalid(StatusIoErr);
        ReadOnlySpan<byte> id = _file.Serial;
        foreach (ref readonly var d in data)
        {
            if (id.IsEmpty) break;
            int n = (int)Math.Min(d.Len, (uint)id.Length);
            if (n == 0) continue;
            byte* p = mem.TryGetHostPointer(d.Addr, (ulong)n);
            if (p == null) return StatusIoErr;
            id[..n].CopyTo(new Span<byte>(p, n));
            id = id[n..];
            written += (uint)n;
        }
        return StatusOk;
    }

    public void Dispose()
    {
        _file.Dispose();
        RateLimiter?.Dispose();
    }
}
