using System.Buffers.Binary;
using Flint.Devices.Metrics;
using Flint.Memory;
using static Flint.Devices.Virtio.Mem.VirtioMemConstants;

namespace Flint.Devices.Virtio.Mem;

/// <summary>
/// virtio-mem (spec 5.15), as Firecracker's devices/virtio/mem: one request queue; the host sets requested_size
/// (PATCH /hotplug/memory) and the driver plugs or unplugs block ranges until plugged_size meets it.
/// Every guest range is read once (one copy of the request), then checked: block aligned, at least one block, inside
/// the usable region, no wrap (the length is bounded by division, never computed past the region). A plug that would
/// take plugged_size above requested_size, a plug of a range not wholly unplugged and an unplug of a range not wholly
/// plugged are refused (VIRTIO_MEM_RESP_ERROR), as Firecracker refuses them.
/// Slots (Firecracker's scheme): a KVM slot of the hotplug area is mapped while any of its blocks is plugged, and
/// removed from KVM and made PROT_NONE once none is; every slot the changed range touches is re-evaluated, whether or
/// not the range starts on a slot boundary (Firecracker #5793). Unplugged blocks go back to the host (MADV_DONTNEED).
/// Queue work runs on the event loop, PATCH and GET on the VMM thread; one lock orders them.
/// </summary>
public sealed partial class VirtioMem : VirtioDevice, IVirtioDevice
{
    private static readonly ushort[] s_queueSizes = [QueueSize];

    private readonly Lock _lock = new();
    private readonly HotplugArea _area;
    private readonly IHotplugSlots _slots;
    private readonly ChainBuffers _buffers = new(QueueSize);
    private readonly PluggedBlocks _blocks;
    private readonly ulong _blocksPerSlot;
    private ulong _usable, _plugged, _requested;

    /// <param name="area">The hotplug area (its base is the device's addr, its size region_size, its slots the KVM slots).</param>
    /// <param name="blockSize">Block size in bytes: a power of two, a divisor of the slot size.</param>
    public VirtioMem(HotplugArea area, ulong blockSize, IHotplugSlots slots)
    {
        if (blockSize == 0 || (blockSize & (blockSize - 1)) != 0 || area.SlotSize % blockSize != 0 || blockSize % GuestMemory.PageSize != 0)
            throw new ArgumentException($"block size 0x{blockSize:x} must be a power of two dividing the slot size 0x{area.SlotSize:x}");
        _area = area;
        _slots = slots;
        BlockSize = blockSize;
        _blocksPerSlot = area.SlotSize / blockSize;
        _blocks = new PluggedBlocks((long)(area.Size / blockSize));
    }

    public VirtioMemMetrics Metrics { get; } = new();
    public ulong BlockSize { get; }
    public ulong Address => _area.GuestBase;
    public ulong RegionSize => _area.Size;
    public ulong SlotSize => _area.SlotSize;
    public ulong UsableRegionSize => Volatile.Read(ref _usable);
    public ulong PluggedSize => Volatile.Read(ref _plugged);
    public ulong RequestedSize => Volatile.Read(ref _requested);

    public override uint DeviceType => DeviceId;
    public override ulong AvailableFeatures => VirtioFeatures.Version1 | 1UL << FeatureUnpluggedInaccessible;
    public override ReadOnlySpan<ushort> QueueMaxSizes => s_queueSizes;

    /// <summary>Firecracker's VirtioMemError::DeviceNotActive.</summary>
    public const string DeviceNotActiveMessage = "Device is not active";

    /// <summary>Firecracker's VirtioMemError::InvalidSize (the size in bytes).</summary>
    public static string InvalidSizeMessage(ulong bytes) =>
        $"Size {bytes} is invalid: it must be a multiple of block size and less than the total size";

    /// <summary>
    /// Refuses a driver that did not accept VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE (Firecracker's RequiredFeatureNotAcked):
    /// such a driver may read unplugged memory, which is not mapped for the guest.
    /// </summary>
    bool IVirtioDevice.Activate(GuestMemory memory, VirtQueue[] queues, VirtioInterrupt interrupt, ulong ackedFeatures)
    {
        if ((ackedFeatures & 1UL << FeatureUnpluggedInaccessible) == 0)
        {
            Log.Error("driver did not accept VIRTIO_MEM_F_UNPLUGGED_INACCESSIBLE");
            Interlocked.Increment(ref Metrics.ActivateFails);
            return false;
        }
        return Activate(memory, queues, interrupt, ackedFeatures);
    }

    protected override void OnActivateFailed() => Interlocked.Increment(ref Metrics.ActivateFails);

    protected override void OnReset()
    {
        // A barrier against a request in progress. The plugged state outlives the reset (the spec keeps it; a driver
        // starting over sends UNPLUG_ALL).
        lock (_lock) { }
    }

    public override void ReadConfig(ulong offset, Span<byte> data)
    {
        Span<byte> cfg = stackalloc byte[ConfigSize];
        cfg.Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(cfg[ConfigBlockSize..], BlockSize);
        BinaryPrimitives.WriteUInt64LittleEndian(cfg[ConfigAddr..], Address);
        BinaryPrimitives.WriteUInt64LittleEndian(cfg[ConfigRegionSize..], RegionSize);
        BinaryPrimitives.WriteUInt64LittleEndian(cfg[ConfigUsableRegionSize..], UsableRegionSize);
        BinaryPrimitives.WriteUInt64LittleEndian(cfg[ConfigPluggedSize..], PluggedSize);
        BinaryPrimitives.WriteUInt64LittleEndian(cfg[ConfigRequestedSize..], RequestedSize);
        ReadConfigBytes(cfg, offset, data);
    }

    /// <summary>The config space is the device's alone: a driver write is logged and ignored (as Firecracker does).</summary>
    public override void WriteConfig(ulong offset, ReadOnlySpan<byte> data) =>
        Log.Error("driver wrote the read-only config space", (long)offset);

    /// <summary>GET /hotplug/memory.</summary>
    public VirtioMemStatus Status()
    {
        lock (_lock)
            return new VirtioMemStatus((uint)(BlockSize >> 20), (uint)(RegionSize >> 20), (uint)(SlotSize >> 20),
                (uint)(_plugged >> 20), (uint)(_requested >> 20));
    }

    /// <summary>
    /// PATCH /hotplug/memory: the new target, which the driver learns through a config-change interrupt. As Firecracker's
    /// update_requested_size: refused until the driver activated the device, and unless a multiple of the block size
    /// no larger than the region (<see cref="InvalidOperationException"/> with Firecracker's text). The usable region
    /// grows to the target rounded up to whole slots; it never shrinks here (UNPLUG_ALL resets it).
    /// </summary>
    public void UpdateRequestedSize(uint requestedMib)
    {
        if (!IsActivated) throw new InvalidOperationException(DeviceNotActiveMessage);
        ulong requested = (ulong)requestedMib << 20; // cannot wrap: at most 2^52
        if (requested % BlockSize != 0 || requested > RegionSize) throw new InvalidOperationException(InvalidSizeMessage(requested));
        lock (_lock)
        {
            if (_usable < requested)
            {
                ulong slots = (requested + SlotSize - 1) / SlotSize;
                Volatile.Write(ref _usable, slots * SlotSize);
            }
            Volatile.Write(ref _requested, requested);
        }
        NotifyConfigChanged();
    }

    public override void ProcessQueue(int index)
    {
        Interlocked.Increment(ref Metrics.QueueEventCount);
        if (!IsActivated || index != 0)
        {
            Interlocked.Increment(ref Metrics.QueueEventFails);
            return;
        }
        lock (_lock)
        {
            var irq = Interrupt;
            var mem = Memory;
            if (!IsActivated || irq == null || mem == null) return;
            var q = Queues[0];
            bool used = false;
            while (q.TryPop(out var chain))
            {
                uint written;
                try { written = Serve(ref chain, mem); }
                catch (Exception e)
                {
                    // A defect must not take the VMM down: the chain goes back unanswered and the queue carries on.
                    Interlocked.Increment(ref Metrics.QueueEventFails);
                    Log.Error("request failed: " + e.GetType().Name);
                    written = 0;
                }
                q.AddUsed(chain.HeadIndex, written);
                used = true;
            }
            if (used && q.NeedsNotification()) irq.SignalUsedQueue(0);
        }
    }

    /// <summary>Reads one request (once), acts on it and writes the response; returns the used length.</summary>
    private uint Serve(ref DescriptorChain chain, GuestMemory mem)
    {
        if (!_buffers.Load(ref chain, mem) || _buffers.ReadableBytes < RequestSize || _buffers.WritableBytes < ResponseSize)
        {
            // Firecracker stops the queue on such a chain; here it goes back with nothing written, and the rest is served.
            Interlocked.Increment(ref Metrics.QueueEventFails);
            Log.Error("malformed request chain");
            return 0;
        }
        Span<byte> req = stackalloc byte[RequestSize];
        var reader = _buffers.Reader();
        reader.ReadExact(req);
        ushort type = BinaryPrimitives.ReadUInt16LittleEndian(req);
        ulong addr = BinaryPrimitives.ReadUInt64LittleEndian(req[RequestAddrOffset..]);
        ushort nb = BinaryPrimitives.ReadUInt16LittleEndian(req[RequestNbBlocksOffset..]);

        ushort resp = RespAck, state = 0;
        long start = LatencyAggregate.Start();
        switch (type)
        {
            case ReqPlug:
                Interlocked.Increment(ref Metrics.PlugCount);
                if (Plug(addr, nb) is { } plugError) resp = Refuse(ref Metrics.PlugFails, plugError, addr);
                else Interlocked.Add(ref Metrics.PlugBytes, (long)((ulong)nb * BlockSize));
                Metrics.PlugAgg.RecordSince(start);
                break;
            case ReqUnplug:
                Interlocked.Increment(ref Metrics.UnplugCount);
                if (Unplug(addr, nb) is { } unplugError) resp = Refuse(ref Metrics.UnplugFails, unplugError, addr);
                else Interlocked.Add(ref Metrics.UnplugBytes, (long)((ulong)nb * BlockSize));
                Metrics.UnplugAgg.RecordSince(start);
                break;
            case ReqUnplugAll:
                Interlocked.Increment(ref Metrics.UnplugAllCount);
                if (UnplugAll() is { } allError) resp = Refuse(ref Metrics.UnplugAllFails, allError, 0);
                Metrics.UnplugAllAgg.RecordSince(start);
                break;
            case ReqState:
                Interlocked.Increment(ref Metrics.StateCount);
                if (!TryBlocks(addr, nb, out long first)) resp = Refuse(ref Metrics.StateFails, "state refused: invalid range at", addr);
                else state = StateOf(first, nb);
                Metrics.StateAgg.RecordSince(start);
                break;
            default:
                Interlocked.Increment(ref Metrics.QueueEventFails);
                Log.Error("unknown request type", type);
                resp = RespError;
                break;
        }

        Span<byte> answer = stackalloc byte[ResponseSize];
        answer.Clear();
        BinaryPrimitives.WriteUInt16LittleEndian(answer, resp);
        BinaryPrimitives.WriteUInt16LittleEndian(answer[ResponseStateOffset..], state);
        var writer = _buffers.Writer();
        writer.Write(answer);
        return (uint)writer.Written;
    }

    /// <summary>Counts and logs (rate limited; the text is a constant, the address formatted only when written) a refusal.</summary>
    private ushort Refuse(ref long failMetric, string why, ulong addr)
    {
        Interlocked.Increment(ref failMetric);
        Log.Error(why, (long)addr);
        return RespError;
    }

    /// <summary>
    /// The first block of [addr, addr + nb blocks) when the range is valid: block aligned, not empty, inside the usable
    /// region, no wrap. The length is never computed unless it fits, so a huge nb cannot overflow past the check.
    /// </summary>
    private bool TryBlocks(ulong addr, ushort nb, out long firstBlock)
    {
        firstBlock = 0;
        ulong usable = _usable;
        if (nb == 0 || addr % BlockSize != 0 || addr < Address) return false;
        ulong off = addr - Address;
        if (off >= usable) return false;
        if (nb > (usable - off) / BlockSize) return false;
        firstBlock = (long)(off / BlockSize);
        return true;
    }

    private ushort StateOf(long first, long n)
    {
        long set = _blocks.CountSet(first, n);
        return set == n ? StatePlugged : set == 0 ? StateUnplugged : StateMixed;
    }

    private string? Plug(ulong addr, ushort nb)
    {
        if (!TryBlocks(addr, nb, out long first)) return "plug refused: invalid range at";
        if ((ulong)nb * BlockSize > _requested - Math.Min(_requested, _plugged))
            return "plug refused: plugged_size would be greater than requested_size; range at";
        if (StateOf(first, nb) != StateUnplugged) return "plug refused: range is not wholly unplugged at";
        return Update(first, nb, plug: true);
    }

    private string? Unplug(ulong addr, ushort nb)
    {
        if (!TryBlocks(addr, nb, out long first)) return "unplug refused: invalid range at";
        if (StateOf(first, nb) != StatePlugged) return "unplug refused: range is not wholly plugged at";
        return Update(first, nb, plug: false);
    }

    private string? UnplugAll()
    {
        var error = Update(0, _blocks.Count, plug: false);
        if (error == null) Volatile.Write(ref _usable, 0);
        return error;
    }

    /// <summary>Marks the blocks, re-evaluates every slot they touch, and gives unplugged blocks back to the host.</summary>
    private string? Update(long first, long n, bool plug)
    {
        long before = _blocks.CountSet(first, n);
        _blocks.Fill(first, n, plug);
        long after = plug ? n : 0;
        Volatile.Write(ref _plugged, _plugged - (ulong)before * BlockSize + (ulong)after * BlockSize);
        try { SyncSlots(first, n); }
        catch (Exception e)
        {
            // Back to the state the guest had before (plug and unplug only come from uniform ranges), slots included.
            if (n == before || before == 0)
            {
                _blocks.Fill(first, n, !plug);
                Volatile.Write(ref _plugged, _plugged - (ulong)after * BlockSize + (ulong)before * BlockSize);
                try { SyncSlots(first, n); } catch (Exception) { }
            }
            Log.Error("updating the KVM slots failed: " + e.Message);
            return "range refused: slot update failed at";
        }
        if (!plug)
        {
            try { _area.Discard(Address + (ulong)first * BlockSize, (ulong)n * BlockSize); }
            catch (Exception e)
            {
                Interlocked.Increment(ref Metrics.UnplugDiscardFails);
                Log.Error("failed to discard unplugged memory: " + e.Message);
            }
        }
        return null;
    }

    private void SyncSlots(long first, long n)
    {
        long bps = (long)_blocksPerSlot;
        for (long s = first / bps, last = (first + n - 1) / bps; s <= last; s++)
        {
            bool any = _blocks.CountSet(s * bps, bps) != 0;
            if (any && !_area.IsSlotPlugged((int)s)) _slots.Plug((int)s);
            else if (!any && _area.IsSlotPlugged((int)s)) _slots.Unplug((int)s);
        }
    }
}
