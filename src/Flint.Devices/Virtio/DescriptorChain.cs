using Flint.Memory;

namespace Flint.Devices.Virtio;

/// <summary>
/// Walks one descriptor chain without allocating. Every descriptor is checked before it is handed out:
/// index inside the table, no more descriptors than the queue size (so a loop ends), no INDIRECT flag (the
/// feature is not offered), and the buffer wholly inside one guest memory region. The first failed check marks
/// the chain <see cref="IsBroken"/> and ends it; the device then fails the request instead of throwing or spinning.
/// </summary>
public struct DescriptorChain
{
    private readonly VirtQueue? _queue;
    private ushort _next;
    private ushort _visited;
    private bool _hasNext;

    internal DescriptorChain(VirtQueue queue, ushort head)
    {
        _queue = queue;
        HeadIndex = head;
        _next = head;
        _hasNext = true;
    }

    /// <summary>The id the used ring entry must carry: the head index exactly as the guest gave it.</summary>
    public ushort HeadIndex { get; }

    /// <summary>True once a descriptor failed validation; no further descriptors are produced.</summary>
    public bool IsBroken { get; private set; }

    /// <summary>Number of descriptors produced so far.</summary>
    public int Count => _visited;

    /// <summary>The next valid descriptor, or false at the end of the chain or when it is broken.</summary>
    public bool TryNext(out Descriptor descriptor)
    {
        descriptor = default;
        var q = _queue;
        if (q == null || !_hasNext || IsBroken) return false;
        // A chain outliving a device reset points at unmapped ring pointers: treat it as broken.
        if (!q.IsActivated) { IsBroken = true; return false; }
        // _visited reaching the size means this would be descriptor size+1: only a loop gets there.
        if (_next >= q.Size || _visited >= q.Size) { IsBroken = true; return false; }

        var d = q.ReadDescriptor(_next);
        _visited++;
        if ((d.Flags & Descriptor.FlagIndirect) != 0 || !IsInsideMemory(q.Memory!, d))
        {
            IsBroken = true;
            return false;
        }
        _hasNext = d.HasNext;
        _next = d.Next;
        descriptor = d;
        return true;
    }

    // A zero-length buffer touches no memory, so its address does not matter; any other must lie in one region
    // because devices reach it through a single host pointer.
    private static bool IsInsideMemory(GuestMemory mem, in Descriptor d) => d.Len == 0 || mem.IsValidRange(d.Addr, d.Len);
}
