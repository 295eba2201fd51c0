using Flint.Sys;

namespace Flint.Devices.Virtio;

/// <summary>
/// Writes the device-writable bytes of a <see cref="ChainBuffers"/> in order, whatever the descriptor boundaries,
/// and counts them (<see cref="Written"/> is the used length to report). A value type: making one allocates
/// nothing. Valid until the buffers are reloaded.
/// </summary>
// SAFETY: pieces are host pointers of write-only descriptors that DescriptorChain validated to lie in guest RAM; writes stop at each piece's length.
public unsafe struct ChainWriter
{
    private SegmentCursor _cursor;
    private readonly ulong _total;

    internal ChainWriter(IoVec* segments, int count, ulong total)
    {
        _cursor = new SegmentCursor(segments, count, total);
        _total = total;
    }

    /// <summary>Writable bytes not yet written.</summary>
    public readonly ulong Available => _cursor.Left;

    /// <summary>Bytes written (or skipped) so far.</summary>
    public readonly ulong Written => _total - _cursor.Left;

    /// <summary>Copies as much of <paramref name="src"/> as fits; returns how many bytes.</summary>
    public int Write(ReadOnlySpan<byte> src)
    {
        int done = 0;
        while (done < src.Length && NextPiece((ulong)(src.Length - done), out byte* p, out uint len))
        {
            // SAFETY: p..p+len lies in one validated, device-writable guest buffer (ChainBuffers checked it).
            src.Slice(done, (int)len).CopyTo(new Span<byte>(p, (int)len));
            done += (int)len;
        }
        return done;
    }

    /// <summary>Moves past up to <paramref name="n"/> bytes without writing them (a header field written later).</summary>
    public ulong Skip(ulong n) => _cursor.Skip(n);

    /// <summary>Segments not yet wholly written: the most pieces <see cref="NextPiece"/> can still hand out.</summary>
    public readonly int SegmentsLeft => _cursor.SegmentsLeft;

    /// <summary>
    /// The next <paramref name="max"/> bytes as at most <paramref name="capacity"/> iovecs (one per
    /// <see cref="NextPiece"/>), counted as written; returns how many were filled. For a scattered socket read straight
    /// into guest memory; an array of <see cref="SegmentsLeft"/> entries always holds the whole range.
    /// </summary>
    public int NextPieces(ulong max, IoVec* iov, int capacity) => _cursor.NextPieces(max, iov, capacity);

    /// <summary>
    /// The next contiguous piece of guest memory, at most <paramref name="max"/> bytes (and under 4 GiB), counted as
    /// written: for zero-copy I/O straight into guest memory (pread into a guest buffer).
    /// </summary>
    public bool NextPiece(ulong max, out byte* p, out uint len) => _cursor.NextPiece(max, out p, out len);
}
