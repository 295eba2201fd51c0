using Flint.Sys;

namespace Flint.Devices.Virtio;

/// <summary>
/// Writes the device-writable bytes of a <see cref="ChainBuffers"/> in order, whatever the descriptor boundaries,
/// and counts them (<see cref="Written"/> is the used length to report). A value type: making one allocates
/// nothing. Valid until the buffers are reloaded.
/// </summary>
public unsafe struct ChainWriter
{
    private readonly IoVec* _segments;
    private readonly int _count;
    private int _index;
    private ulong _offset; // into _segments[_index]

    internal ChainWriter(IoVec* segments, int count, ulong total)
    {
        _segments = segments;
        _count = count;
        Available = total;
    }

    /// <summary>Writable bytes not yet written.</summary>
    public ulong Available { get; private set; }

    /// <summary>Bytes written (or skipped) so far.</summary>
    public ulong Written { get; private set; }

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
    public ulong Skip(ulong n)
    {
        ulong done = 0;
        while (done < n && NextPiece(n - done, out _, out uint len)) done += len;
        return done;
    }

    /// <summary>Segments not yet wholly written: the most pieces <see cref="NextPiece"/> can still hand out.</summary>
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
    /// The next contiguous piece of guest memory, at most <paramref name="max"/> bytes (and under 4 GiB), counted as
    /// written: for zero-copy I/O straight into guest memory (pread into a guest buffer).
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
        Available -= n;
        Written += n;
        return true;
    }
}
