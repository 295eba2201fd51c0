using System.Runtime.InteropServices;
using Flint.Devices.Metrics;
using Flint.Devices.Mmds;
using Flint.Memory;
using static Flint.Devices.Virtio.Net.NetConstants;

namespace Flint.Devices.Virtio.Net;

/// <summary>
/// virtio-net over a host TAP (spec 5.1): queue 0 receives, queue 1 transmits, 256 entries each. The tap is opened
/// with IFF_VNET_HDR and a 12-byte header, i.e. the tap speaks virtio_net_hdr_v1 itself, so a frame moves between
/// guest buffers and the tap with readv/writev straight on guest memory (no copy); only frames for the MMDS stack,
/// and receive chains too small for the largest frame, go through one copy in a device-owned buffer.
/// <para>
/// With MRG_RXBUF (spec 5.1.6.4; Firecracker offers it too) a received frame may fill several receive chains: Linux
/// then posts small buffers sized to the traffic instead of 64 KiB "big packet" chains. Chains are gathered until
/// they can hold the largest frame that can arrive, and one readv fills them.
/// </para>
/// <para>
/// RX is driven by the tap fd (registered edge-triggered, see <see cref="EventSources"/>): it is drained until
/// EAGAIN; when the guest has no receive buffers the device just remembers the tap is readable and resumes on
/// the next rx-queue notification, so nothing spins. Frames from the MMDS stack are delivered before tap frames.
/// </para>
/// Nothing the guest puts in a ring makes this throw: malformed chains are counted and completed with length 0.
/// Threads: <see cref="ProcessQueue"/> (event loop, transport lock), tap and rate-limiter events (event loop),
/// reset/activation (vCPU, transport lock) and <see cref="UpdateRateLimiters"/> (API) all serialise on one lock.
/// </summary>
// SAFETY: the frame scratch buffer is native memory of MaxFrameWithHeader bytes owned by the device (freed in Dispose); guest buffers come from validated chains.
public sealed unsafe partial class VirtioNet : VirtioDevice, IEventSources, IDisposable
{
    public const ushort QueueSize = 256;

    private static readonly ushort[] s_queueSizes = [QueueSize, QueueSize];

    private readonly Lock _lock = new();
    // Each queue's request, read once from its chain(s): every check, charge and copy below uses this copy.
    private readonly ChainBuffers _txBuffers = new(QueueSize);
    private readonly ChainBuffers _rxBuffers = new(QueueSize);
    private readonly ushort[] _rxHeads = new ushort[QueueSize];
    private readonly ulong[] _rxHeadCapacity = new ulong[QueueSize];
    private readonly byte* _scratch;
    private readonly byte[] _config = new byte[ConfigSize];
    private readonly Tap _tap;
    private readonly MmdsNetworkStack? _mmds;
    private readonly Flint.Sys.TimerFd? _mmdsTimer; // the MMDS stack's retransmission deadline
    private long _mmdsTimerAt;                      // what _mmdsTimer is armed for (0: disarmed)
    private INetRateLimiter? _rxLimiter;
    private INetRateLimiter? _txLimiter;
    private bool _tapReadable = true;
    private bool _disposed;
    private bool _mergeable;
    private int _rxFrameMax = MaxFrameWithHeader; // the largest frame (with header) the tap can hand the guest

    private enum RxStep { Delivered, NothingToRead, Dropped, NoBuffers, Malformed }

    /// <summary>Opens (or creates) the tap named <paramref name="hostDevName"/>; see the other constructor.</summary>
    public VirtioNet(string hostDevName, byte[]? guestMac = null, INetRateLimiter? rxRateLimiter = null,
        INetRateLimiter? txRateLimiter = null, MmdsNetworkStack? mmds = null)
        : this(Tap.Open(hostDevName), guestMac, rxRateLimiter, txRateLimiter, mmds) { }

    /// <param name="tap">The tap; the device owns it from now on.</param>
    /// <param name="guestMac">6 bytes: offered through VIRTIO_NET_F_MAC; null lets the guest pick a random MAC.</param>
    /// <param name="mmds">When set, guest frames for the MMDS address go to this stack instead of the tap.</param>
    public VirtioNet(Tap tap, byte[]? guestMac = null, INetRateLimiter? rxRateLimiter = null,
        INetRateLimiter? txRateLimiter = null, MmdsNetworkStack? mmds = null)
    {
        if (guestMac != null && guestMac.Length != 6) throw new ArgumentException("guest MAC must be 6 bytes");
        _tap = tap;
        GuestMac = guestMac?.ToArray();
        _rxLimiter = rxRateLimiter;
        _txLimiter = txRateLimiter;
        _mmds = mmds;
        GuestMac?.CopyTo(_config, ConfigMac);
        _config[ConfigStatus] = (byte)StatusLinkUp;
        _scratch = (byte*)NativeMemory.Alloc(MaxFrameWithHeader);
        var sources = new List<EventSource> { new(tap.Fd, OnTapEvent, Flint.Sys.Libc.EPOLLIN | EPOLLET) };
        if (rxRateLimiter is { EventFd: >= 0 }) sources.Add(new(rxRateLimiter.EventFd, _ => OnRateLimiterEvent(rx: true)));
        if (txRateLimiter is { EventFd: >= 0 }) sources.Add(new(txRateLimiter.EventFd, _ => OnRateLimiterEvent(rx: false)));
        if (mmds != null)
        {
            _mmdsTimer = new Flint.Sys.TimerFd();
            sources.Add(new(_mmdsTimer.Fd, _ => OnMmdsTimer()));
        }
        EventSources = sources;
    }

    public NetMetrics Metrics { get; } = new();
    public Tap Tap => _tap;
    public byte[]? GuestMac { get; }
    public MmdsNetworkStack? Mmds => _mmds;

    /// <summary>The tap fd (EPOLLIN | EPOLLET), each rate limiter's timer fd and, with MMDS, its retransmission timer
    /// fd. Register them all on the event loop.</summary>
    public IReadOnlyList<EventSource> EventSources { get; }

    public override uint DeviceType => VirtioDeviceType.Net;

    public override ulong AvailableFeatures =>
        VirtioFeatures.Version1 | VirtioFeatures.RingEventIdx
        | (1UL << FeatureCsum) | (1UL << FeatureGuestCsum)
        | (1UL << FeatureGuestTso4) | (1UL << FeatureGuestTso6) | (1UL << FeatureGuestUfo)
        | (1UL << FeatureHostTso4) | (1UL << FeatureHostTso6) | (1UL << FeatureHostUfo)
        | (1UL << FeatureMrgRxbuf)
        | (GuestMac != null ? 1UL << FeatureMac : 0);

    public override ReadOnlySpan<ushort> QueueMaxSizes => s_queueSizes;

    public override void ReadConfig(ulong offset, Span<byte> data)
    {
        lock (_lock) ReadConfigBytes(_config, offset, data);
    }

    /// <summary>Like Firecracker, the MAC bytes take writes (counted as mac_address_updates); the rest is read-only.</summary>
    public override void WriteConfig(ulong offset, ReadOnlySpan<byte> data)
    {
        if (offset >= ConfigStatus || (ulong)data.Length > ConfigStatus - offset)
        {
            Interlocked.Increment(ref Metrics.CfgFails);
            return;
        }
        lock (_lock) data.CopyTo(_config.AsSpan((int)offset));
        Interlocked.Increment(ref Metrics.MacAddressUpdates);
    }

    protected override void OnActivateFailed() => Interlocked.Increment(ref Metrics.ActivateFails);

    /// <summary>The tap may now hand us exactly the offloads the guest accepted on receive.</summary>
    protected override void OnActivated()
    {
        lock (_lock)
        {
            uint off = Tap.OffloadsFor(AckedFeatures);
            _mergeable = (AckedFeatures & (1UL << FeatureMrgRxbuf)) != 0;
            // Without receive offloads the tap never builds frames above the MTU (spec 5.1.6.3.1: 1526 bytes; 4 more here for a VLAN tag).
            _rxFrameMax = (off & (TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_UFO)) != 0 ? MaxFrameWithHeader : MaxPlainFrameWithHeader;
            try { _tap.SetOffload(off); }
            catch (Flint.Sys.SysException)
            {
                // Kernels without tap UFO: keep the rest.
                try { _tap.SetOffload(off & ~TUN_F_UFO); }
                catch (Flint.Sys.SysException) { Interlocked.Increment(ref Metrics.ActivateFails); }
            }
            _tapReadable = true;
        }
    }

    protected override void OnReset()
    {
        // Taking the lock waits out a tap event in progress before the transport resets the queues.
        lock (_lock) _tapReadable = true;
    }

    /// <summary>PATCH /network-interfaces: swaps the limiters (null = unlimited). Prefer reconfiguring the existing
    /// limiter in place: a new limiter's EventFd is not registered on the event loop by this call.</summary>
    public void UpdateRateLimiters(INetRateLimiter? rx, INetRateLimiter? tx)
    {
        lock (_lock)
        {
            _rxLimiter = rx;
            _txLimiter = tx;
        }
    }

    public override void ProcessQueue(int index)
    {
        lock (_lock)
        {
            if (!IsActivated || Interrupt == null || (uint)index > TxQueue)
            {
                Interlocked.Increment(ref Metrics.EventFails);
                return;
            }
            try
            {
                if (index == RxQueue)
                {
                    Interlocked.Increment(ref Metrics.RxQueueEventCount);
                    ProcessRx();
                }
                else
                {
                    Interlocked.Increment(ref Metrics.TxQueueEventCount);
                    ProcessTx();
                    if (_mmds is { HasFrameToSend: true }) ProcessRx();
                }
            }
            catch (Exception e)
            {
                Interlocked.Increment(ref Metrics.EventFails);
                Log.Error("queue processing failed", e.GetType().Name);
            }
        }
    }

    /// <summary>Event-loop handler for the tap fd.</summary>
    public void OnTapEvent(uint events)
    {
        lock (_lock)
        {
            Interlocked.Increment(ref Metrics.RxTapEventCount);
            _tapReadable = true;
            if (!IsActivated || Interrupt == null) return;
            try { ProcessRx(); }
            catch (Exception e) { Interlocked.Increment(ref Metrics.EventFails); Log.Error("rx processing failed", e.GetType().Name); }
        }
    }

    /// <summary>Event-loop handler for a rate limiter's timer: refill, then resume the blocked direction.</summary>
    public void OnRateLimiterEvent(bool rx)
    {
        lock (_lock)
        {
            var l = rx ? _rxLimiter : _txLimiter;
            Interlocked.Increment(ref rx ? ref Metrics.RxEventRateLimiterCount : ref Metrics.TxRateLimiterEventCount);
            if (l == null || !l.OnEvent() || !IsActivated || Interrupt == null) return;
            try
            {
                if (!rx) ProcessTx();
                ProcessRx();
            }
            catch (Exception e) { Interlocked.Increment(ref Metrics.EventFails); Log.Error("rx processing failed", e.GetType().Name); }
        }
    }

    /// <summary>Event-loop handler for the MMDS retransmission timer: segments the guest did not acknowledge go again.</summary>
    public void OnMmdsTimer()
    {
        lock (_lock)
        {
            _mmdsTimer!.Read();
            _mmdsTimerAt = 0; // one-shot: it is disarmed now
            if (_disposed) return;
            _mmds!.OnRetransmitTimer();
            if (IsActivated && Interrupt != null)
            {
                try { ProcessRx(); }
                catch (Exception e) { Interlocked.Increment(ref Metrics.EventFails); Log.Error("rx processing failed", e.GetType().Name); }
            }
            ArmMmdsTimer();
        }
    }

    /// <summary>Keeps the timer on the MMDS stack's earliest deadline; a syscall only when that deadline moved.</summary>
    private void ArmMmdsTimer()
    {
        if (_mmdsTimer == null) return;
        long at = _mmds!.NextRetransmitMs;
        if (at == _mmdsTimerAt) return;
        _mmdsTimerAt = at;
        long ms = at == 0 ? 0 : Math.Max(1, at - _mmds.NowMs);
        _mmdsTimer.Arm(TimeSpan.FromMilliseconds(ms));
    }

    // ---- TX ----

    private void ProcessTx()
    {
        var q = Queues[TxQueue];
        var mem = Memory!;
        bool used = false, popped = false;
        while (true)
        {
            var limiter = _txLimiter;
            if (limiter is { IsBlocked: true })
            {
                Interlocked.Increment(ref Metrics.TxRateLimiterThrottled);
                break;
            }
            if (!q.TryPop(out var chain)) break;
            popped = true;
            // Firecracker's tx_remaining_reqs_count: at each pop, the frames still waiting behind this one.
            Interlocked.Add(ref Metrics.TxRemainingReqsCount, q.PendingCount);
            // A device-writable descriptor makes the chain unloadable for tx, as in Firecracker's IoVecBuffer.
            bool loaded = _txBuffers.Load(ref chain, mem) && _txBuffers.WritableCount == 0;
            ulong total = _txBuffers.ReadableBytes;
            if (!loaded || total < VnetHeaderSize || total > MaxFrameWithHeader)
            {
                // As Firecracker's net device.rs: a chain that cannot be loaded is tx_fails, one that loads but is not
                // a frame it can send (shorter than the virtio header, longer than any frame) is tx_malformed_frames.
                Interlocked.Increment(ref loaded ? ref Metrics.TxMalformedFrames : ref Metrics.TxFails);
                Log.Error("tx: malformed frame chain, bytes", (long)total);
                q.AddUsed(chain.HeadIndex, 0);
                used = true;
                continue;
            }
            if (limiter != null && !limiter.Consume(total - VnetHeaderSize))
            {
                q.UndoPop(); // put the chain back: it goes out once the limiter refills (read again then)
                Interlocked.Increment(ref Metrics.TxRateLimiterThrottled);
                break;
            }
            Transmit((int)total);
            q.AddUsed(chain.HeadIndex, 0);
            used = true;
        }
        if (!popped) Interlocked.Increment(ref Metrics.NoTxAvailBuffer);
        if (used && q.NeedsNotification()) Interrupt!.SignalUsedQueue(TxQueue);
        ArmMmdsTimer(); // the guest's ACKs move the MMDS deadline
    }

    private void Transmit(int total)
    {
        // The Ethernet + IPv4/ARP headers (first 42 bytes after the virtio header) decide where the frame goes. They
        // are copied once, to the start of the scratch buffer: an MMDS frame continues after them, so the stack
        // gets the very bytes the decision was made on.
        var reader = _txBuffers.Reader();
        int hlen = Math.Min(VnetHeaderSize + 42, total);
        var head = new Span<byte>(_scratch, hlen);
        reader.ReadExact(head);
        var eth = head[VnetHeaderSize..];
        if (GuestMac != null && eth.Length >= 12 && !eth.Slice(6, 6).SequenceEqual(GuestMac))
            Interlocked.Increment(ref Metrics.TxSpoofedMacCount);

        nint r;
        long tapWriteStart = 0;
        if (_mmds != null && MmdsNetworkStack.IsCandidate(eth, _mmds.Ipv4Address))
        {
            var frame = new Span<byte>(_scratch, total);
            reader.ReadExact(frame[hlen..]);
            bool partial = (frame[0] & HeaderFlagNeedsCsum) != 0;
            if (_mmds.DetourFrame(frame[VnetHeaderSize..], partial)) return;
            tapWriteStart = LatencyAggregate.Start();
            r = _tap.Write(frame);
        }
        else
        {
            tapWriteStart = LatencyAggregate.Start();
            r = _tap.WriteV(_txBuffers.Readable, _txBuffers.ReadableCount);
        }
        Metrics.TapWriteAgg.RecordSince(tapWriteStart);
        if (r < 0)
        {
            // As Firecracker's net device.rs: a failed tap write is tap_write_fails only (tx_fails is a chain it
            // could not load).
            Log.Error("tx: tap write failed, errno", -(long)r);
            Interlocked.Increment(ref Metrics.TapWriteFails);
            return;
        }
        Interlocked.Increment(ref Metrics.TxCount);
        Interlocked.Increment(ref Metrics.TxPacketsCount);
        // Firecracker counts the bytes written to the tap: the virtio-net header included.
        Interlocked.Add(ref Metrics.TxBytesCount, total);
    }

    // ---- RX ----

    private void ProcessRx()
    {
        var q = Queues[RxQueue];
        var mem = Memory!;
        bool used = false;
        while (true)
        {
            bool fromMmds = _mmds is { HasFrameToSend: true };
            if (!fromMmds && !_tapReadable) break;
            // MMDS answers count against the rx limiter like tap frames (Firecracker limits every frame the guest gets).
            var limiter = _rxLimiter;
            if (limiter is { IsBlocked: true })
            {
                Interlocked.Increment(ref Metrics.RxRateLimiterThrottled);
                break;
            }
            if (_mergeable)
            {
                var step = ReceiveMerged(q, mem, fromMmds, out int frameLen);
                if (step == RxStep.Delivered)
                {
                    limiter?.Consume((ulong)(frameLen - VnetHeaderSize));
                    CountRx(frameLen);
                }
                if (step is RxStep.Delivered or RxStep.Malformed) { used = true; continue; }
                if (step == RxStep.Dropped) continue;
                // Too few buffers for the next frame: wait for the guest's kick (with EVENT_IDX, TryPop asked for one
                // when it found the ring dry).
                if (step == RxStep.NoBuffers) { Interlocked.Increment(ref Metrics.NoRxAvailBuffer); break; }
                if (fromMmds && !_mmds!.HasFrameToSend) continue; // NothingToRead from MMDS: the tap may have some
                break;
            }
            if (!q.TryPop(out var chain))
            {
                // Wait for the guest's rx-queue notification; the tap stays marked readable.
                Interlocked.Increment(ref Metrics.NoRxAvailBuffer);
                break;
            }
            bool ok = _rxBuffers.Load(ref chain, mem) && _rxBuffers.ReadableCount == 0;
            ulong capacity = _rxBuffers.WritableBytes;
            if (!ok || capacity < VnetHeaderSize)
            {
                Interlocked.Increment(ref Metrics.RxFails);
                Log.Error("rx: malformed receive chain, bytes", (long)capacity);
                q.AddUsed(chain.HeadIndex, 0);
                used = true;
                continue;
            }
            int len = fromMmds ? ReceiveFromMmds(capacity) : ReceiveFromTap(capacity);
            if (len == 0)
            {
                q.UndoPop(); // nothing to put in it: the guest keeps the buffer
                if (fromMmds && !_mmds!.HasFrameToSend) continue;
                break;
            }
            if (len < 0)
            {
                q.UndoPop();
                continue; // that frame was dropped; try the next one with the same buffer
            }
            limiter?.Consume((ulong)(len - VnetHeaderSize));
            CountRx(len);
            q.AddUsed(chain.HeadIndex, (uint)len);
            used = true;
        }
        if (used && q.NeedsNotification()) Interrupt!.SignalUsedQueue(RxQueue);
        ArmMmdsTimer(); // MMDS segments sent: their deadline
    }

    private void CountRx(int lenWithHeader)
    {
        Interlocked.Increment(ref Metrics.RxCount);
        Interlocked.Increment(ref Metrics.RxPacketsCount);
        // Firecracker counts the bytes put in the guest's buffers: the virtio-net header included.
        Interlocked.Add(ref Metrics.RxBytesCount, lenWithHeader);
    }

    /// <summary>
    /// One frame with MRG_RXBUF. Chains are taken until together they hold the largest frame that can come next
    /// (from the tap: <see cref="_rxFrameMax"/>; from MMDS: one MTU frame), the frame goes into all of them at once,
    /// the chains it filled are completed together (one used-idx update, num_buffers in the first header) and the
    /// rest go back to the ring. When the ring runs dry first the device waits for the guest to add buffers, unless
    /// every descriptor is already with the device: then it takes what fits, so a small ring never stalls.
    /// </summary>
    private RxStep ReceiveMerged(VirtQueue q, GuestMemory mem, bool fromMmds, out int frameLen)
    {
        frameLen = 0;
        ulong need = fromMmds ? (ulong)MaxPlainFrameWithHeader : (ulong)_rxFrameMax;
        int heads = 0;
        ulong capacity = 0;
        _rxBuffers.Clear();
        while (capacity < need && q.TryPop(out var chain))
        {
            ulong before = _rxBuffers.WritableBytes;
            bool ok = _rxBuffers.Append(ref chain, mem) && _rxBuffers.ReadableCount == 0;
            ulong cap = _rxBuffers.WritableBytes - before;
            if (!ok || cap <= VnetHeaderSize) // each buffer must be larger than the header (spec 5.1.6.3.1)
            {
                // Complete the bad chain and those taken before it with length 0: the driver drops them.
                Interlocked.Increment(ref Metrics.RxFails);
                Log.Error("rx: malformed receive chain, bytes", (long)cap);
                for (int i = 0; i < heads; i++) q.AddUsedUnpublished(_rxHeads[i], 0);
                q.AddUsedUnpublished(chain.HeadIndex, 0);
                q.PublishUsed();
                return RxStep.Malformed;
            }
            _rxHeads[heads] = chain.HeadIndex;
            _rxHeadCapacity[heads] = cap;
            heads++;
            capacity += cap;
        }
        if (heads == 0 || (capacity < need && _rxBuffers.DescriptorCount < q.Size))
        {
            q.UndoPop(heads);
            return RxStep.NoBuffers;
        }
        int len = fromMmds ? ReceiveFromMmds(capacity) : ReceiveFromTap(capacity);
        if (len <= 0)
        {
            q.UndoPop(heads);
            return len == 0 ? RxStep.NothingToRead : RxStep.Dropped;
        }
        ulong left = (ulong)len;
        int filled = 0;
        while (left > 0)
        {
            ulong c = Math.Min(left, _rxHeadCapacity[filled]);
            q.AddUsedUnpublished(_rxHeads[filled], (uint)c);
            left -= c;
            filled++;
        }
        Span<byte> numBuffers = [(byte)filled, (byte)(filled >> 8)];
        WriteAt(10, numBuffers);
        q.UndoPop(heads - filled);
        q.PublishUsed(); // release: the frame and num_buffers are visible before the used idx
        frameLen = len;
        return RxStep.Delivered;
    }

    /// <summary>Frame length with header; 0 when the tap has nothing (or failed); -1 when a frame was dropped.</summary>
    private int ReceiveFromTap(ulong capacity)
    {
        nint r;
        if (capacity >= (ulong)_rxFrameMax)
        {
            r = _tap.ReadV(_rxBuffers.Writable, _rxBuffers.WritableCount); // zero copy: the kernel writes the header and frame into guest buffers
            if (r > (nint)capacity) // tun reports a frame's full length even when it had to cut it
            {
                Interlocked.Increment(ref Metrics.RxFails);
                return -1;
            }
        }
        else
        {
            r = _tap.Read(new Span<byte>(_scratch, MaxFrameWithHeader));
            if (r > (nint)capacity)
            {
                Interlocked.Increment(ref Metrics.RxFails);
                return -1;
            }
            if (r > 0) WriteAt(0, new ReadOnlySpan<byte>(_scratch, (int)r));
        }
        if (r <= 0)
        {
            if (r < 0)
            {
                Interlocked.Increment(ref Metrics.TapReadFails);
                Log.Error("rx: tap read failed, errno", -(long)r);
            }
            _tapReadable = false;
            return 0;
        }
        if (r < VnetHeaderSize)
        {
            Interlocked.Increment(ref Metrics.RxFails);
            return -1;
        }
        // IFF_VNET_HDR leaves num_buffers (the last 2 header bytes) unwritten; without MRG_RXBUF it must be 1
        // (with it, ReceiveMerged writes the real count once it knows how many buffers the frame filled).
        if (!_mergeable)
        {
            Span<byte> one = [1, 0];
            WriteAt(10, one);
        }
        return (int)r;
    }

    private int ReceiveFromMmds(ulong capacity)
    {
        var buf = new Span<byte>(_scratch, MaxFrameWithHeader);
        int flen = _mmds!.WriteNextFrame(buf[VnetHeaderSize..]);
        if (flen <= 0) return 0;
        int total = VnetHeaderSize + flen;
        if ((ulong)total > capacity)
        {
            Interlocked.Increment(ref Metrics.RxPartialWrites);
            return -1;
        }
        buf[..VnetHeaderSize].Clear();
        buf[10] = 1; // num_buffers
        WriteAt(0, buf[..total]);
        return total;
    }

    /// <summary>Copies <paramref name="src"/> into the receive buffers at byte <paramref name="offset"/>.</summary>
    private void WriteAt(ulong offset, ReadOnlySpan<byte> src)
    {
        var writer = _rxBuffers.Writer();
        if (writer.Skip(offset) == offset) writer.Write(src);
    }

    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed) return;
            _disposed = true;
            _tap.Dispose();
            _mmdsTimer?.Dispose();
            NativeMemory.Free(_scratch);
        }
    }
}
