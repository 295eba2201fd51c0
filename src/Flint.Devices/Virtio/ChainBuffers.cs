using System.Runtime.CompilerServices;
using Flint.Memory;
using Flint.Sys;

namespace Flint.Devices.Virtio;

/// <summary>
/// The guest buffers of one request, read out of the descriptor table exactly once: each descriptor is copied,
/// validated (see <see cref="DescriptorChain"/>), turned into a host (pointer, length) segment and never looked at
/// again. A device then judges, charges and executes this one copy, so a second vCPU rewriting the table (growing a
/// buffer, flipping its direction) after the pop changes nothing the device acts on. The model is Firecracker's
/// <c>IoVecBuffer</c>/<c>IoVecBufferMut</c> and rust-vmm's <c>descriptor_utils</c> Reader/Writer.
/// <para>
/// Segments keep the chain's order; device-readable ones all come before device-writable ones (spec 2.6.4.2: a
/// driver must not put a readable buffer after a writable one), so the readable part is <see cref="Readable"/>
/// and the writable part <see cref="Writable"/>, each a plain iovec array that can go straight to readv/writev.
/// Zero-length descriptors take no segment. A device reads through <see cref="Reader"/> and writes through
/// <see cref="Writer"/>; the byte layout across descriptors does not matter (VIRTIO_F_ANY_LAYOUT is implied by 1.0).
/// </para>
/// <para>
/// Several chains can be appended into one (virtio-net's merged receive buffers fill many chains with one readv).
/// One instance per queue, made when the device is built: loading allocates nothing.
/// </para>
/// </summary>
// SAFETY: holds host pointers of a validated descriptor chain (in guest RAM, lengths checked); valid while guest memory is mapped.
public sealed unsafe class ChainBuffers
{
    private readonly IoVec[] _segments; // pinned: its address goes to the kernel
    private readonly IoVec* _base;

    /// <param name="maxSegments">At least the queue's size: a chain has no more descriptors than that.</param>
    public ChainBuffers(int maxSegments)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxSegments);
        _segments = GC.AllocateArray<IoVec>(maxSegments, pinned: true);
        // SAFETY: the array is allocated pinned and lives as long as this object, so the address stays valid.
        _base = (IoVec*)Unsafe.AsPointer(ref _segments[0]);
    }

    /// <summary>Segments (readable, then writable).</summary>
    public int Count { get; private set; }

    /// <summary>How many of the first segments are device-readable.</summary>
    public int ReadableCount { get; private set; }

    public int WritableCount => Count - ReadableCount;

    /// <summary>Descriptors read so far, zero-length ones included (net's "every descriptor is ours" test).</summary>
    public int DescriptorCount { get; private set; }

    /// <summary>Total length of the device-readable buffers.</summary>
    public ulong ReadableBytes { get; private set; }

    /// <summary>Total length of the device-writable buffers.</summary>
    public ulong WritableBytes { get; private set; }

    /// <summary>The device-readable segments, in order: an iovec array for writev.</summary>
    public IoVec* Readable => _base;

    /// <summary>The device-writable segments, in order: an iovec array for readv.</summary>
    public IoVec* Writable => _base + ReadableCount;

    /// <summary>Forgets every segment (nothing in guest memory is touched).</summary>
    public void Clear()
    {
        Count = ReadableCount = DescriptorCount = 0;
        ReadableBytes = WritableBytes = 0;
    }

    /// <summary><see cref="Clear"/>, then <see cref="Append"/>.</summary>
    public bool Load(ref DescriptorChain chain, GuestMemory memory)
    {
        Clear();
        return Append(ref chain, memory);
    }

    /// <summary>
    /// Reads the rest of <paramref name="chain"/> once and adds its buffers. False when the chain is broken (see
    /// <see cref="DescriptorChain.IsBroken"/>), has more segments than fit, or puts a readable buffer after a
    /// writable one; the device must then fail the request without acting on any of it.
    /// </summary>
    public bool Append(ref DescriptorChain chain, GuestMemory memory)
    {
        while (chain.TryNext(out var d))
        {
            DescriptorCount++;
            if (d.Len == 0) continue;
            bool writable = d.IsWriteOnly;
            if (!writable && WritableCount > 0) return false;
            if (Count == _segments.Length) return false;
            byte* p = memory.TryGetHostPointer(d.Addr, d.Len);
            if (p == null) return false; // unreachable: the chain validated the range
            // SAFETY: Count < _segments.Length was checked above; p covers d.Len bytes of one guest region, which
            // stays mapped for the VM's lifetime (guest memory is never unmapped while devices exist).
            ref var s = ref _base[Count++];
            s.Base = p;
            s.Len = d.Len;
            if (writable)
            {
                WritableBytes += d.Len;
                // As Firecracker's IoVecBufferMut: the device may write any of it (readv, io_uring, ChainWriter) and
                // the iovec keeps no guest address, so the pages are marked now, for the next Diff snapshot.
                memory.MarkDirty(d.Addr, d.Len);
            }
            else
            {
                ReadableCount++;
                ReadableBytes += d.Len;
            }
        }
        return !chain.IsBroken;
    }

    /// <summary>A cursor over the readable part, at its start.</summary>
    public ChainReader Reader() => new(_base, ReadableCount, ReadableBytes);

    /// <summary>A cursor over the writable part, at its start.</summary>
    public ChainWriter Writer() => new(_base + ReadableCount, WritableCount, WritableBytes);
}
