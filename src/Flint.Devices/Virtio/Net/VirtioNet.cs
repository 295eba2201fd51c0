using System.Runtime.InteropServices;
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
/// RX is driven by the tap fd (registered edge-triggered, see <see cref="EventSources"/>): it is drained until
/// EAGAIN; when the guest has no receive buffers the device just remembers the tap is readable and resumes on
/// the next rx-queue notification, so nothing spins. Frames from the MMDS stack are delivered before tap frames.
/// </para>
/// Nothing the guest puts in a ring makes this throw: malformed chains are counted and completed with length 0.
/// Threads: <see cref="ProcessQueue"/> (event loop, transport lock), tap and rate-limiter events (event loop),
/// reset/activation (vCPU, transport lock) and <see cref="UpdateRateLimiters"/> (API) all serialise on one lock.
/// </summary>
public sealed unsafe class VirtioNet : VirtioDevice, IEventSources, IDisposable
{
    public const ushort QueueSize = 256;

    private static readonly ushort[] s_queueSizes = [QueueSize, QueueSize];

    private readonly Lock _lock = new();
    private readonly Descriptor[] _chain = new Descriptor[QueueSize];
    private readonly IoVec* _iov;
    private readonly byte* _scratch;
    private readonly byte[] _config = new byte[ConfigSize];
    private readonly Tap _tap;
    private readonly MmdsNetworkStack? _mmds;
    private INetRateLimiter? _rxLimiter;
    private INetRateLimiter? _txLimiter;
    private bool _tapReadable = true;
    private bool _disposed;

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
        _iov = (IoVec*)NativeMemory.Alloc(QueueSize, (nuint)sizeof(IoVec));
        _scratch = (byte*)NativeMemory.Alloc(MaxFrameWithHeader);
        var sources = new List<EventSource> { new(tap.Fd, OnTapEvent, Flint.Sys.Libc.EPOLLIN | EPOLLET) };
        if (rxRateLimiter is { EventFd: >= 0 }) sources.Add(new(rxRateLimiter.EventFd, _ => OnRateLimiterEvent(rx: true)));
        if (txRateLimiter is { EventFd: >= 0 }) sources.Add(new(txRateLimiter.EventFd, _ => OnRateLimiterEvent(rx: false)));
        EventSources = sources;
    }

    public NetMetrics Metrics { get; } = new();
    public Tap Tap => _tap;
    public byte[]? GuestMac { get; }
    public MmdsNetworkStack? Mmds => _mmds;

    /// <summary>The tap fd (EPOLLIN | EPOLLET) and each rate limiter's timer fd. Register them all on the event loop.</summary>
    public IReadOnlyList<EventSource> EventSources { get; }

    public override uint DeviceType => VirtioDeviceType.Net;

    public override ulong AvailableFeatures =>
        VirtioFeatures.Version1
        | (1UL << FeatureCsum) | (1UL << FeatureGuestCsum)
        | (1UL << FeatureGuestTso4) | (1UL << FeatureGuestTso6) | (1UL << FeatureGuestUfo)
        | (1UL << FeatureHostTso4) | (1UL << FeatureHostTso6) | (1UL << FeatureHostUfo)
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
            catch (Exception)
            {
                Interlocked.Increment(ref Metrics.EventFails);
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
            catch (Exception) { Interlocked.Increment(ref Metrics.EventFails); }
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
            catch (Exception) { Interlocked.Increment(ref Metrics.EventFails); }
        }
    }

    // ---- TX ----

    private void ProcessTx()
    {
        var q = Queues[TxQueue];
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
            int n = chain.CollectInto(_chain);
            ulong total = 0;
            int iovs = n < 0 ? -1 : BuildIov(n, wantWritable: false, out total);
            if (iovs < 0 || total < VnetHeaderSize || total > MaxFrameWithHeader)
            {
                Interlocked.Increment(ref Metrics.TxMalformedFrames);
                q.AddUsed(chain.HeadIndex, 0);
                used = true;
                continue;
            }
            if (limiter != null && !limiter.Consume(total - VnetHeaderSize))
            {
                q.NextAvail--; // put the chain back: it goes out once the limiter refills
                Interlocked.Increment(ref Metrics.TxRateLimiterThrottled);
                break;
            }
            Transmit(iovs, (int)total);
            q.AddUsed(chain.HeadIndex, 0);
            used = true;
        }
        if (!popped) Interlocked.Increment(ref Metrics.NoTxAvailBuffer);
        if (used && q.NeedsNotification) Interrupt!.SignalUsedQueue();
    }

    private void Transmit(int iovs, int total)
    {
        // The Ethernet + IPv4/ARP headers (first 42 bytes after the virtio header) decide where the frame goes.
        Span<byte> head = stackalloc byte[VnetHeaderSize + 42];
        int hlen = Math.Min(head.Length, total);
        Gather(iovs, head[..hlen]);
        var eth = head[VnetHeaderSize..hlen];
        if (GuestMac != null && eth.Length >= 12 && !eth.Slice(6, 6).SequenceEqual(GuestMac))
            Interlocked.Increment(ref Metrics.TxSpoofedMacCount);

        nint r;
        if (_mmds != null && MmdsNetworkStack.IsCandidate(eth, _mmds.Ipv4Address))
        {
            var frame = new Span<byte>(_scratch, total);
            Gather(iovs, frame);
            bool partial = (frame[0] & HeaderFlagNeedsCsum) != 0;
            if (_mmds.DetourFrame(frame[VnetHeaderSize..], partial)) return;
            r = _tap.Write(frame);
        }
        else
        {
            r = _tap.WriteV(_iov, iovs);
        }
        if (r < 0)
        {
            Interlocked.Increment(ref Metrics.TapWriteFails);
            Interlocked.Increment(ref Metrics.TxFails);
            return;
        }
        Interlocked.Increment(ref Metrics.TxCount);
        Interlocked.Increment(ref Metrics.TxPacketsCount);
        Interlocked.Add(ref Metrics.TxBytesCount, total - VnetHeaderSize);
    }

    // ---- RX ----

    private void ProcessRx()
    {
        var q = Queues[RxQueue];
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
            if (!q.TryPop(out var chain))
            {
                // Wait for the guest's rx-queue notification; the tap stays marked readable.
                Interlocked.Increment(ref Metrics.NoRxAvailBuffer);
                break;
            }
            int n = chain.CollectInto(_chain);
            ulong capacity = 0;
            int iovs = n < 0 ? -1 : BuildIov(n, wantWritable: true, out capacity);
            if (iovs < 0 || capacity < VnetHeaderSize)
            {
                Interlocked.Increment(ref Metrics.RxFails);
                q.AddUsed(chain.HeadIndex, 0);
                used = true;
                continue;
            }
            int len = fromMmds ? ReceiveFromMmds(iovs, capacity) : ReceiveFromTap(iovs, capacity);
            if (len == 0)
            {
                q.NextAvail--; // nothing to put in it: the guest keeps the buffer
                if (fromMmds && !_mmds!.HasFrameToSend) continue;
                break;
            }
            if (len < 0)
            {
                q.NextAvail--;
                continue; // that frame was dropped; try the next one with the same buffer
            }
            limiter?.Consume((ulong)(len - VnetHeaderSize));
            Interlocked.Increment(ref Metrics.RxCount);
            Interlocked.Increment(ref Metrics.RxPacketsCount);
            Interlocked.Add(ref Metrics.RxBytesCount, len - VnetHeaderSize);
            q.AddUsed(chain.HeadIndex, (uint)len);
            used = true;
        }
        if (used && q.NeedsNotification) Interrupt!.SignalUsedQueue();
    }

    /// <summary>Frame length with header; 0 when the tap has nothing (or failed); -1 when a frame was dropped.</summary>
    private int ReceiveFromTap(int iovs, ulong capacity)
    {
        nint r;
        if (capacity >= MaxFrameWithHeader)
        {
            r = _tap.ReadV(_iov, iovs); // zero copy: the kernel writes the header and frame into guest buffers
        }
        else
        {
            r = _tap.Read(new Span<byte>(_scratch, MaxFrameWithHeader));
            if (r > (nint)capacity)
            {
                Interlocked.Increment(ref Metrics.RxFails);
                return -1;
            }
            if (r > 0) Scatter(iovs, new ReadOnlySpan<byte>(_scratch, (int)r));
        }
        if (r <= 0)
        {
            if (r < 0) Interlocked.Increment(ref Metrics.TapReadFails);
            _tapReadable = false;
            return 0;
        }
        if (r < VnetHeaderSize)
        {
            Interlocked.Increment(ref Metrics.RxFails);
            return -1;
        }
        // IFF_VNET_HDR leaves num_buffers (the last 2 header bytes) unwritten; without MRG_RXBUF it must be 1.
        Span<byte> one = [1, 0];
        ScatterAt(iovs, 10, one);
        return (int)r;
    }

    private int ReceiveFromMmds(int iovs, ulong capacity)
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
        Scatter(iovs, buf[..total]);
        return total;
    }

    // ---- chains as iovecs over guest memory ----

    /// <summary>
    /// Turns the collected descriptors into host iovecs (zero-length ones skipped). -1 when a descriptor has the
    /// wrong direction or is not reachable; <paramref name="total"/> is the sum of lengths.
    /// </summary>
    private int BuildIov(int n, bool wantWritable, out ulong total)
    {
        total = 0;
        var mem = Memory!;
        int k = 0;
        for (int i = 0; i < n; i++)
        {
            ref readonly var d = ref _chain[i];
            if (d.IsWriteOnly != wantWritable) return -1;
            if (d.Len == 0) continue;
            byte* p = mem.TryGetHostPointer(d.Addr, d.Len);
            if (p == null) return -1;
            _iov[k].Base = p;
            _iov[k].Len = d.Len;
            k++;
            total += d.Len;
        }
        return k;
    }

    private void Gather(int iovs, Span<byte> dst)
    {
        int off = 0;
        for (int i = 0; i < iovs && off < dst.Length; i++)
        {
            int c = (int)Math.Min((ulong)(dst.Length - off), _iov[i].Len);
            new ReadOnlySpan<byte>(_iov[i].Base, c).CopyTo(dst[off..]);
            off += c;
        }
    }

    private void Scatter(int iovs, ReadOnlySpan<byte> src) => ScatterAt(iovs, 0, src);

    private void ScatterAt(int iovs, int offset, ReadOnlySpan<byte> src)
    {
        ulong skip = (ulong)offset;
        for (int i = 0; i < iovs && !src.IsEmpty; i++)
        {
            ulong len = _iov[i].Len;
            if (skip >= len) { skip -= len; continue; }
            int c = (int)Math.Min((ulong)src.Length, len - skip);
            src[..c].CopyTo(new Span<byte>((byte*)_iov[i].Base + skip, c));
            src = src[c..];
            skip = 0;
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed) return;
            _disposed = true;
            _tap.Dispose();
            NativeMemory.Free(_iov);
            NativeMemory.Free(_scratch);
        }
    }
}
