namespace Flint.Devices.Virtio.Vsock;

/// <summary>
/// Guest-to-host bytes the host socket has not taken yet, as a ring. Its capacity is the buf_alloc we advertise, so
/// a guest that respects its credit can never overflow it (one that does not is reset before anything is
/// appended). The array is allocated on first need: most connections never have a slow reader.
/// </summary>
internal sealed class VsockTxBuffer
{
    private readonly int _capacity;
    private byte[]? _ring;
    private int _head;

    public VsockTxBuffer(int capacity) => _capacity = capacity;

    /// <summary>Bytes waiting for the host socket.</summary>
    public int Count { get; private set; }

    public int Capacity => _capacity;

    public int Free => _capacity - Count;

    /// <summary>Appends all of <paramref name="data"/>; false (nothing appended) when it does not fit.</summary>
    public bool TryAppend(ReadOnlySpan<byte> data)
    {
        if (data.Length > Free) return false;
        if (data.IsEmpty) return true;
        var ring = _ring ??= new byte[_capacity];
        int tail = (_head + Count) % ring.Length;
        int first = Math.Min(data.Length, ring.Length - tail);
        data[..first].CopyTo(ring.AsSpan(tail));
        data[first..].CopyTo(ring);
        Count += data.Length;
        return true;
    }

    /// <summary>
    /// Writes buffered bytes to <paramref name="stream"/> until it stops taking them. Returns the bytes written, or
    /// -errno when the stream failed (what was written before the failure is lost with the connection anyway).
    /// </summary>
    public long FlushTo(IVsockHostStream stream)
    {
        var ring = _ring;
        if (ring == null) return 0;
        long total = 0;
        while (Count > 0)
        {
            int chunk = Math.Min(Count, ring.Length - _head);
            nint r = stream.Send(ring.AsSpan(_head, chunk));
            if (r < 0) return r;
            if (r == 0) break;
            _head = (_head + (int)r) % ring.Length;
            Count -= (int)r;
            total += r;
        }
        if (Count == 0) _head = 0;
        return total;
    }

    /// <summary>Drops everything and the array (the connection is gone).</summary>
    public void Release()
    {
        _ring = null;
        _head = 0;
        Count = 0;
    }
}
