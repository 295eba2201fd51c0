using Flint.Sys;

namespace Flint.Devices.Virtio;

/// <summary>
/// Reads the device-readable bytes of a <see cref="ChainBuffers"/> in order, whatever the descriptor boundaries.
/// A value type over the buffers' segments: making one allocates nothing. Valid until the buffers are reloaded.
/// The bytes themselves are guest memory the guest may be rewriting: copy a field once and use that copy.
/// </summary>
// SAFETY: pieces are host pointers of descriptors that DescriptorChain validated to lie in guest RAM; the reader never goes past a piece's length.
public unsafe struct ChainReader
{
    private SegmentCursor _cursor;

    internal ChainReader(IoVec* segments, int count, ulong total) => _cursor = new SegmentCursor(segments, count, total);

    /// <summary>Bytes not yet read.</summary>
    public readonly ulong Remaining => _cursor.Left;

    /// <summary>Copies up to <c>dst.Length</c> bytes; returns how many.</summary>
    public int Read(Span<byte> dst)
    {
        int done = 0;
        while (done < dst.Length && NextPiece((ulong)(dst.Length - done), out byte* p, out uint len))
        {
            // SAFETY: p..p+len lies in one validated guest region (ChainBuffers checked it), len <= dst's remainder.
            new ReadOnlySpan<byte>(p, (int)len).CopyTo(dst[done..]);
            done += (int)len;
        }
        return done;
    }

    /// <summary>Copies exactly <c>dst.Length</c> bytes, or returns false (having consumed what there was).</summary>
    public bool ReadExact(Span<byte> dst) => Read(dst) == dst.Length;

    /// <summary>Skips up to <paramref name="n"/> bytes; returns how many.</summary>
    public ulong Skip(ulong n) => _cursor.Skip(n);

    /// <summary>Segments not yet wholly read: the most pieces <see cref="NextPiece"/> can still hand out.</summary>
    public readonly int SegmentsLeft => _cursor.SegmentsLeft;

    /// <summary>
    /// The next <paramref name="max"/> bytes as at most <paramref name="capacity"/> iovecs (one per
    /// <see cref="NextPiece"/>), moving past them; returns how many were filled. For a gathered socket call straight
    /// on guest memory; an array of <see cref="SegmentsLeft"/> entries always holds the whole range.
    /// </summary>
    public int NextPieces(ulong max, IoVec* iov, int capacity) => _cursor.NextPieces(max, iov, capacity);

    /// <summary>
    /// The next contiguous piece of guest memory, at most <paramref name="max"/> bytes (and under 4 GiB), and moves
    /// past it: for zero-copy I/O straight from guest memory (pwrite from a guest buffer).
    /// </summary>
    public bool NextPiece(ulong max, out byte* p, out uint len) => _cursor.NextPiece(max, out p, out len);
}
