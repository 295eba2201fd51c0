using System.Runtime.CompilerServices;
using Flint.Memory;

namespace Flint.Devices.Virtio;

/// <summary>
/// Device side of one split virtqueue (spec 2.6): the descriptor table, the driver's available ring and the
/// device's used ring. The transport fills in size and addresses while the driver sets the queue up; on
/// activation they are validated once and turned into host pointers, so the per-request path is plain loads
/// and stores with the ordering the spec asks for (acquire on avail idx, release on used idx).
/// </summary>
// SAFETY: ring pointers come from GuestMemory.GetHostPointer after the ring's whole extent was checked against guest RAM at activation.
public sealed unsafe class VirtQueue
{
    /// <summary>Avail ring flag: the driver asks not to be interrupted for used buffers (a hint, spec 2.6.7).</summary>
    public const ushort AvailFlagNoInterrupt = 1;

    public const int DescriptorSize = 16;

    private byte* _desc;
    private ushort* _availFlags;
    private ushort* _availIdx;
    private ushort* _availRing;
    private ushort* _usedIdx;
    private byte* _usedRing;
    private ushort* _usedEvent;  // avail ring's trailing field: the driver's used_event
    private ushort* _availEvent; // used ring's trailing field: our avail_event
    private ushort _mask;
    private ushort _signalledUsed; // used idx when the last notification decision was made (EVENT_IDX)
    private bool _signalledValid;

    public VirtQueue(ushort maxSize)
    {
        if (maxSize == 0 || (maxSize & (maxSize - 1)) != 0)
            throw new ArgumentException($"queue max size {maxSize} is not a power of two");
        MaxSize = maxSize;
        Size = maxSize;
    }

    public ushort MaxSize { get; }

    /// <summary>QueueNum as written by the driver; starts at <see cref="MaxSize"/>.</summary>
    public ushort Size { get; set; }

    /// <summary>QueueReady as written by the driver.</summary>
    public bool Ready { get; set; }

    /// <summary>Guest-physical address of the descriptor table (QueueDesc).</summary>
    public ulong DescTable { get; set; }

    /// <summary>Guest-physical address of the available ring (QueueDriver).</summary>
    public ulong AvailRing { get; set; }

    /// <summary>Guest-physical address of the used ring (QueueDevice).</summary>
    public ulong UsedRing { get; set; }

    /// <summary>
    /// Next avail ring slot the device will consume (free-running, wraps at 2^16). Set by the transport (reset,
    /// snapshot); devices move it only through <see cref="TryPop"/> and <see cref="UndoPop"/>.
    /// </summary>
    public ushort NextAvail { get; set; }

    /// <summary>Next used ring slot the device will fill (free-running, wraps at 2^16).</summary>
    public ushort NextUsed { get; set; }

    public bool IsActivated { get; private set; }

    /// <summary>
    /// VIRTIO_RING_F_EVENT_IDX was negotiated (spec 2.6.7.2, 2.6.8.3): interrupts follow the driver's used_event
    /// instead of the NO_INTERRUPT flag, and the driver kicks only when its avail idx passes our avail_event. The
    /// device sets avail_event only when it runs out of entries (<see cref="TryPop"/>), so a driver adding buffers while
    /// the device is busy does not kick at all. A device that then puts entries back (too few for what it needs) still
    /// gets its kick: avail_event already points past them.
    /// </summary>
    public bool EventIdx { get; set; }

    /// <summary>
    /// Set when the driver broke the ring protocol (avail idx more than a queue's worth ahead). The queue then
    /// produces nothing until reset: guessing which entries are real would mean acting on garbage.
    /// </summary>
    public bool IsFailed { get; private set; }

    internal GuestMemory? Memory { get; private set; }

    /// <summary>The owning device's log (set on activation), for the queue's own failures.</summary>
    internal Logging.DeviceLog? Log { get; set; }

    /// <summary>Times the driver broke the ring protocol (see <see cref="IsFailed"/>); kept across resets.</summary>
    public long Failures => Interlocked.Read(ref _failures);

    private long _failures;

    /// <summary>Ring sizes from spec 2.6: avail and used carry flags, idx and a trailing event field.</summary>
    public static ulong DescTableBytes(ushort size) => (ulong)DescriptorSize * size;
    public static ulong AvailRingBytes(ushort size) => 6 + 2UL * size;
    public static ulong UsedRingBytes(ushort size) => 6 + 8UL * size;

    /// <summary>
    /// Size a power of two no larger than the max; alignment desc 16, avail 2, used 4 (spec 2.6); each ring wholly
    /// inside one guest memory region (one host pointer reaches all of it).
    /// </summary>
    public bool IsValid(GuestMemory memory)
    {
        ushort n = Size;
        if (n == 0 || n > MaxSize || (n & (n - 1)) != 0) return false;
        if (DescTable % 16 != 0 || AvailRing % 2 != 0 || UsedRing % 4 != 0) return false;
        return memory.IsValidRange(DescTable, DescTableBytes(n))
            && memory.IsValidRange(AvailRing, AvailRingBytes(n))
            && memory.IsValidRange(UsedRing, UsedRingBytes(n));
    }

    /// <summary>Validates and caches host pointers to the rings. False (and nothing changed) when invalid or not ready.</summary>
    public bool Activate(GuestMemory memory)
    {
        if (!Ready || !IsValid(memory)) return false;
        ushort n = Size;
        _desc = memory.GetHostPointer(DescTable, DescTableBytes(n));
        byte* avail = memory.GetHostPointer(AvailRing, AvailRingBytes(n));
        byte* used = memory.GetHostPointer(UsedRing, UsedRingBytes(n));
        _availFlags = (ushort*)avail;
        _availIdx = (ushort*)(avail + 2);
        _availRing = (ushort*)(avail + 4);
        _usedIdx = (ushort*)(used + 2);
        _usedRing = used + 4;
        _usedEvent = (ushort*)(avail + 4 + 2 * n);
        _availEvent = (ushort*)(used + 4 + 8 * n);
        _mask = (ushort)(n - 1);
        _signalledValid = false;
        Memory = memory;
        IsFailed = false;
        IsActivated = true;
        return true;
    }

    /// <summary>Snapshot restore, before activation: the cursors the saved device had reached.</summary>
    public void RestoreCursors(ushort nextAvail, ushort nextUsed)
    {
        NextAvail = nextAvail;
        NextUsed = nextUsed;
    }

    /// <summary>Back to the state after a device reset (spec 2.4): not ready, no addresses, indices at 0.</summary>
    public void Reset()
    {
        IsActivated = false;
        IsFailed = false;
        Memory = null;
        _desc = null;
        _availFlags = _availIdx = _availRing = _usedIdx = _usedEvent = _availEvent = null;
        _usedRing = null;
        EventIdx = false;
        _signalledValid = false;
        Size = MaxSize;
        Ready = false;
        DescTable = AvailRing = UsedRing = 0;
        NextAvail = NextUsed = 0;
    }

    /// <summary>
    /// Takes the next available chain head. The avail idx is read with acquire semantics so the ring entry (and
    /// the descriptors) the driver wrote before publishing it are visible. False when nothing is pending, the
    /// queue is not active, or the driver is broken (see <see cref="IsFailed"/>).
    /// </summary>
    public bool TryPop(out DescriptorChain chain)
    {
        chain = default;
        if (!IsActivated || IsFailed) return false;
        ushort availIdx = Volatile.Read(ref *_availIdx);
        ushort pending = (ushort)(availIdx - NextAvail);
        if (pending == 0)
        {
            if (!EventIdx) return false;
            // Ask for a kick at the next entry, then look once more: an entry published before the driver could see
            // the new avail_event gets no kick, so it has to be found here.
            Volatile.Write(ref *_availEvent, NextAvail);
            Memory!.MarkDirty(UsedRing + 4 + 8UL * Size, 2);
            Interlocked.MemoryBarrier();
            availIdx = Volatile.Read(ref *_availIdx);
            pending = (ushort)(availIdx - NextAvail);
            if (pending == 0) return false;
        }
        if (pending > Size)
        {
            IsFailed = true;
            Interlocked.Increment(ref _failures);
            Log?.Error("queue failed: the driver's avail idx is ahead by more than the queue size", pending);
            return false;
        }
        ushort head = _availRing[NextAvail & _mask];
        NextAvail++;
        chain = new DescriptorChain(this, head);
        return true;
    }

    /// <summary>
    /// Gives back the last <paramref name="count"/> chains taken with <see cref="TryPop"/> and not completed (a rate
    /// limiter said wait, or a receive buffer had nothing to carry): the next pop returns them again, re-read from
    /// the ring, so nothing from the first read is kept. The one place besides the pop that moves the avail cursor.
    /// </summary>
    public void UndoPop(int count = 1)
    {
        if (count <= 0) return;
        NextAvail = (ushort)(NextAvail - count);
    }

    /// <summary>Entries the driver has made available and the device has not taken yet (0 when inactive or failed).</summary>
    public int PendingCount
    {
        get
        {
            if (!IsActivated || IsFailed) return 0;
            ushort pending = (ushort)(Volatile.Read(ref *_availIdx) - NextAvail);
            return pending > Size ? 0 : pending;
        }
    }

    /// <summary>
    /// Returns a chain to the driver: the used element is written first, then the used idx is published with
    /// release semantics so the driver never sees the idx before the element (spec 2.6.8).
    /// </summary>
    public void AddUsed(ushort head, uint len)
    {
        AddUsedUnpublished(head, len);
        PublishUsed();
    }

    /// <summary>
    /// Writes a used element without moving the used idx: for several elements the driver must see together, like
    /// the buffers of one merged virtio-net frame (the driver reads num_buffers from the first and then expects
    /// the rest to be there). <see cref="PublishUsed"/> makes them visible.
    /// </summary>
    public void AddUsedUnpublished(ushort head, uint len)
    {
        if (!IsActivated) return;
        int slot = NextUsed & _mask;
        byte* e = _usedRing + 8 * slot;
        Unsafe.WriteUnaligned(e, (uint)head);
        Unsafe.WriteUnaligned(e + 4, len);
        Memory!.MarkDirty(UsedRing + 4 + 8UL * (uint)slot, 8);
        NextUsed++;
    }

    /// <summary>Publishes the used idx (release: the elements written before it are visible first).</summary>
    public void PublishUsed()
    {
        if (!IsActivated) return;
        Volatile.Write(ref *_usedIdx, NextUsed);
        Memory!.MarkDirty(UsedRing + 2, 2);
    }

    /// <summary>
    /// Whether the driver wants an interrupt for what was used since the last call. Without EVENT_IDX: unless the
    /// NO_INTERRUPT flag is set. With it: when the used idx moved past the driver's used_event since the last
    /// decision (spec 2.6.10.2, vring_need_event), so a driver that asked to hear after N more completions gets one
    /// interrupt, not N. Call once after publishing a batch. The full fence orders our used idx store before the
    /// flags/used_event load; the driver does the mirror image when it re-enables interrupts, so one of the two
    /// sides always sees the other and no completion is stranded.
    /// </summary>
    public bool NeedsNotification()
    {
        if (!IsActivated) return false;
        Interlocked.MemoryBarrier();
        if (!EventIdx) return (Volatile.Read(ref *_availFlags) & AvailFlagNoInterrupt) == 0;
        ushort now = NextUsed, old = _signalledUsed;
        bool valid = _signalledValid;
        _signalledUsed = now;
        _signalledValid = true;
        if (!valid) return true; // first decision since activation: nothing to compare with
        ushort ev = Volatile.Read(ref *_usedEvent);
        return (ushort)(now - ev - 1) < (ushort)(now - old);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal Descriptor ReadDescriptor(ushort index) => Unsafe.ReadUnaligned<Descriptor>(_desc + DescriptorSize * index);
}
