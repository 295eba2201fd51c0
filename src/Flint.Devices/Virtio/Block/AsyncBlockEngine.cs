using System.Diagnostics;
using System.Runtime.InteropServices;
using Flint.Sys;
using static Flint.Devices.Virtio.Block.VirtioBlockConstants;

namespace Flint.Devices.Virtio.Block;

/// <summary>
/// The Async io_engine (Firecracker's <c>AsyncFileEngine</c>): block requests go to the backing file through one
/// io_uring and complete on its eventfd, which the event loop polls beside the queue doorbell; no thread per request.
/// At most <see cref="Slots"/> requests are in flight; a request that finds none free stays on the virtqueue (the
/// device undoes its pop) and is taken again once a completion frees a slot. Owned by <see cref="VirtioBlock"/> and
/// used under its lock only.
/// </summary>
// SAFETY: the in-flight slots and free list are native memory the engine owns (freed in Dispose), indexed by slot numbers from its own free list, never the guest.
internal sealed unsafe class AsyncBlockEngine : IDisposable
{
    /// <summary>Firecracker's IO_URING_NUM_ENTRIES.</summary>
    public const uint RingEntries = 128;

    private IoUring _ring;
    private readonly InFlightRequest* _slots;
    private readonly ushort* _free; // stack of free slot indices
    private int _freeCount;
    private uint _epoch;

    private readonly uint _entries;

    public AsyncBlockEngine(int fileFd, uint entries = RingEntries)
    {
        _entries = entries;
        CompletionEvent = new EventFd();
        try
        {
            _ring = new IoUring(entries, fileFd, CompletionEvent.Fd);
        }
        catch
        {
            CompletionEvent.Dispose();
            throw;
        }
        Slots = (int)Math.Min(_ring.SqEntries, _ring.CqEntries);
        // The slot table is small (Slots x 48 bytes); the iovec arrays hanging off it are allocated lazily.
        _slots = (InFlightRequest*)NativeMemory.AllocZeroed((nuint)Slots, (nuint)sizeof(InFlightRequest));
        _free = (ushort*)NativeMemory.Alloc((nuint)Slots, sizeof(ushort));
        for (int i = 0; i < Slots; i++) _free[i] = (ushort)(Slots - 1 - i);
        _freeCount = Slots;
    }

    /// <summary>Signalled by the kernel for each completion: an event source of the device.</summary>
    public EventFd CompletionEvent { get; }

    /// <summary>Requests that can be in flight at once.</summary>
    public int Slots { get; }

    /// <summary>Requests submitted whose completion has not been taken.</summary>
    public int InFlight => Slots - _freeCount;

    /// <summary>A request can be accepted now.</summary>
    public bool HasRoom => _freeCount > 0 && _ring.HasRoom;

    /// <summary>A new ring for a new backing file (PATCH /drives), built before anything is swapped so a failure changes nothing.</summary>
    public IoUring CreateRing(int fileFd) => new(_entries, fileFd, CompletionEvent.Fd);

    /// <summary>
    /// Replaces the ring. Call with nothing in flight (after <see cref="VirtioBlock"/> drained); whatever is left
    /// (a drain that timed out) is abandoned: its slots are freed and its completions, on the old ring, never read.
    /// </summary>
    public void SwapRing(IoUring next)
    {
        var old = _ring;
        _ring = next;
        Abandon();
        old.Dispose();
    }

    /// <summary>Queues a READV of <paramref name="total"/> bytes into the writer's pieces; false when no slot or SQ entry is free.</summary>
    public bool TrySubmitRead(ushort head, byte* status, ChainWriter writer, ulong total, ulong offset)
    {
        if (!HasRoom) return false;
        ref var slot = ref Take(head, RequestIn, status, total, offset, writer.SegmentsLeft, out ushort index);
        int n = writer.NextPieces(total, slot.Iov, slot.IovCapacity);
        if (_ring.TryPrepareReadv(slot.Iov, (uint)n, offset, UserData(index))) return true;
        Release(index);
        return false;
    }

    /// <summary>Queues a WRITEV of the reader's remaining bytes; false when no slot or SQ entry is free.</summary>
    public bool TrySubmitWrite(ushort head, byte* status, ChainReader reader, ulong total, ulong offset)
    {
        if (!HasRoom) return false;
        ref var slot = ref Take(head, RequestOut, status, total, offset, reader.SegmentsLeft, out ushort index);
        int n = reader.NextPieces(total, slot.Iov, slot.IovCapacity);
        if (_ring.TryPrepareWritev(slot.Iov, (uint)n, offset, UserData(index))) return true;
        Release(index);
        return false;
    }

    /// <summary>Queues an fdatasync of the file (a guest FLUSH under cache_type Writeback).</summary>
    public bool TrySubmitFlush(ushort head, byte* status)
    {
        if (!HasRoom) return false;
        Take(head, RequestFlush, status, 0, 0, 0, out ushort index);
        if (_ring.TryPrepareFsync(dataOnly: true, UserData(index))) return true;
        Release(index);
        return false;
    }

    /// <summary>Hands the prepared requests to the kernel; returns -errno on failure (they stay queued for the next kick).</summary>
    public int Kick() => _ring.Submit();

    /// <summary>
    /// Takes the next finished request. Completions of requests abandoned by a reset are consumed and dropped here:
    /// their status byte and used-ring entry belong to a queue that no longer exists.
    /// </summary>
    public bool TryComplete(out EngineCompletion done)
    {
        while (_ring.TryReap(out var c))
        {
            ulong index = c.UserData & 0xffff;
            if (index >= (ulong)Slots) continue; // not ours: cannot happen, and must not index the table
            ref var slot = ref _slots[index];
            bool current = (uint)(c.UserData >> 32) == _epoch && slot.Epoch == _epoch && slot.Status != null;
            if (!current) continue;
            done = new EngineCompletion(slot.Head, slot.Kind, slot.Status, slot.Length, slot.Offset, c.Result);
            Release((ushort)index);
            return true;
        }
        done = default;
        return false;
    }

    /// <summary>Submits what is queued and waits up to <paramref name="timeoutNs"/> for a completion.</summary>
    public void Wait(long timeoutNs) => _ring.WaitForCompletion(timeoutNs);

    /// <summary>
    /// Waits, bounded by <paramref name="timeout"/>, until the kernel is done with every in-flight request, dropping
    /// their completions (Firecracker's <c>drain(discard_cqes = true)</c> on reset): once this returns true the kernel
    /// will not touch guest memory for them. On time-out the stragglers are abandoned (false): their slots are freed
    /// and their completions will be dropped when they come.
    /// </summary>
    public bool DrainDiscarding(TimeSpan timeout)
    {
        long deadline = Stopwatch.GetTimestamp() + (long)(timeout.TotalSeconds * Stopwatch.Frequency);
        while (true)
        {
            while (TryComplete(out _)) { }
            if (InFlight == 0) return true;
            long left = deadline - Stopwatch.GetTimestamp();
            if (left <= 0)
            {
                Abandon();
                return false;
            }
            _ring.WaitForCompletion(Math.Min(10_000_000, left * 1_000_000_000 / Stopwatch.Frequency));
        }
    }

    /// <summary>Frees every slot under a new epoch: completions of the old one are dropped when they arrive.</summary>
    private void Abandon()
    {
        _epoch++;
        for (int i = 0; i < Slots; i++) _slots[i].Status = null;
        _freeCount = Slots;
        for (int i = 0; i < Slots; i++) _free[i] = (ushort)(Slots - 1 - i);
    }

    private ulong UserData(ushort index) => ((ulong)_epoch << 32) | index;

    private ref InFlightRequest Take(ushort head, uint kind, byte* status, ulong length, ulong offset, int iovNeeded, out ushort index)
    {
        index = _free[--_freeCount];
        ref var slot = ref _slots[index];
        if (slot.IovCapacity < iovNeeded)
        {
            // SAFETY: the old array (if any) belongs to this free slot alone: nothing in flight refers to it.
            NativeMemory.Free(slot.Iov);
            int cap = Math.Max(4, (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)iovNeeded));
            slot.Iov = (IoVec*)NativeMemory.Alloc((nuint)cap, (nuint)sizeof(IoVec));
            slot.IovCapacity = cap;
        }
        slot.Head = head;
        slot.Kind = kind;
        slot.Status = status;
        slot.Length = length;
        slot.Offset = offset;
        slot.Epoch = _epoch;
        return ref slot;
    }

    private void Release(ushort index)
    {
        _slots[index].Status = null;
        _free[_freeCount++] = index;
    }

    /// <summary>Bytes of iovec storage allocated so far (grows with the number of requests in flight at once).</summary>
    public long IovBytes
    {
        get
        {
            long n = 0;
            for (int i = 0; i < Slots; i++) n += _slots[i].IovCapacity * sizeof(IoVec);
            return n;
        }
    }

    public void Dispose()
    {
        _ring.Dispose();
        for (int i = 0; i < Slots; i++) NativeMemory.Free(_slots[i].Iov);
        NativeMemory.Free(_slots);
        NativeMemory.Free(_free);
        CompletionEvent.Dispose();
    }
}
