namespace Flint.Devices.Virtio.Vsock;

/// <summary>
/// RSTs owed to the guest for pairs with no live connection behind them (refused connects, packets for unknown
/// ports, killed connections). A fixed ring: a guest that provokes more than it posts rx buffers for loses the
/// excess (counted), it cannot make us queue without bound.
/// </summary>
internal sealed class VsockRstQueue
{
    private readonly ulong[] _ring;
    private int _head;

    public VsockRstQueue(int capacity) => _ring = new ulong[capacity];

    public int Count { get; private set; }

    /// <summary>Queues an RST from our <paramref name="localPort"/> to the guest's <paramref name="peerPort"/>; false when full (dropped).</summary>
    public bool TryEnqueue(uint localPort, uint peerPort)
    {
        if (Count == _ring.Length) return false;
        _ring[(_head + Count) % _ring.Length] = VsockConnection.MakeKey(localPort, peerPort);
        Count++;
        return true;
    }

    public bool TryDequeue(out uint localPort, out uint peerPort)
    {
        if (Count == 0)
        {
            localPort = peerPort = 0;
            return false;
        }
        ulong key = _ring[_head];
        _head = (_head + 1) % _ring.Length;
        Count--;
        localPort = (uint)(key >> 32);
        peerPort = (uint)key;
        return true;
    }

    public void Clear() => _head = Count = 0;
}
