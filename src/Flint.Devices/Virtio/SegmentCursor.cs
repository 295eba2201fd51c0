using Flint.Sys;

namespace Flint.Devices.Virtio;

/// <summary>
/// A position in the validated segments of a <see cref="ChainBuffers"/>: the walk <see cref="ChainReader"/> and
/// <see cref="ChainWriter"/> share (one over the readable, one over the writable segments). A value type.
/// </summary>
// SAFETY: walks segments of a validated chain; every pointer it returns is within a segment's checked length.
internal unsafe struct SegmentCursor
{
    private readonly IoVec* _segments;
    private readonly int _count;
    private int _index;
    private ulong _offset; // into _segments[_index]

    public SegmentCursor(IoVec* segments, int count, ulong total)
    {
        _segments = segments;
        _count = count;
        Left = total;
    }

    /// <summary>Bytes not yet consumed.</summary>
    public ulong Left { get; private set; }

    /// <summary>Moves past up to <paramref name="n"/> bytes; returns how many.</summary>
    public ulong Skip(ulong n)
    {
        ulong done = 0;
        while (done < n && NextPiece(n - done, out _, out uint len)) done += len;
        return done;
    }

    /// <summary>Segments not yet wholly consumed: the most pieces <see cref="NextPiece"/> can still hand out.</summary>
    public int SegmentsLeft => _count - _index;

    /// <summary>
    /// The next <paramref name="max"/> bytes as at most <paramref name="capacity"/> iovecs (one per
    /// <see cref="NextPiece"/>), moving past them; returns how many were filled. For a gathered socket call straight
    /// on guest memory; an array of <see cref="SegmentsLeft"/> entries always holds the whole range.
    /// </summary>
    public int NextPieces(ulong max, IoVec* iov, int capacity)
    {
        int n = 0;
        while (n < capacity && max > 0 && NextPiece(max, out byte* p, out uint len))
        {
            // SAFETY: n < capacity, the caller's array size.
            iov[n].Base = p;
            iov[n].Len = len;
            n++;
            max -= len;
        }
        return n;
    }

    /// <summary>
    /// The next contiguous piece of guest memory, at most <paramref name="max"/> bytes (and under 4 GiB), and moves
    /// past it.
    /// </summary>
    public bool NextPiece(ulong max, out byte* p, out uint len)
    {
        p = null;
        len = 0;
        while (_index < _count && _offset == _segments[_index].Len) { _index++; _offset = 0; }
        if (_index == _count || max == 0) return false;
        // SAFETY: _index < _count, the number of segments the buffers filled in.
        ref var s = ref _segments[_index];
        ulong n = Math.Min(Math.Min(max, (ulong)s.Len - _offset), uint.MaxValue);
        p = (byte*)s.Base + _offset;
        len = (uint)n;
        _offset += n;
        Left -= n;
        return true;
    }
}
