namespace Flint.Devices.Pci;

/// <summary>
/// Places fixed-size, size-aligned BARs in one guest-physical window (Firecracker's mmio64 allocator, for the one
/// BAR size virtio-pci uses). The lowest free place wins, so a window an unplugged device gave back is the next one
/// handed out: 100 plug/unplug cycles use one window, not 100. Never overlaps, never leaves the window. VMM thread only.
/// </summary>
public sealed class PciBarAllocator
{
    private readonly ulong _base;
    private readonly ulong _barSize;
    private readonly ulong _count;
    private readonly SortedSet<ulong> _freed = [];
    private readonly HashSet<ulong> _inUse = [];
    private ulong _next;

    public PciBarAllocator(ulong windowBase, ulong windowSize, ulong barSize)
    {
        if (barSize == 0 || (barSize & (barSize - 1)) != 0) throw new ArgumentException("BAR size must be a power of two");
        if ((windowBase & (barSize - 1)) != 0) throw new ArgumentException("window base must be aligned to the BAR size");
        _base = windowBase;
        _barSize = barSize;
        _count = windowSize / barSize;
    }

    /// <summary>BARs handed out and not freed.</summary>
    public int InUse => _inUse.Count;

    /// <summary>The lowest free BAR address; false when the window is full.</summary>
    public bool TryAllocate(out ulong address)
    {
        if (_freed.Count > 0)
        {
            address = _freed.Min;
            _freed.Remove(address);
        }
        else if (_next < _count)
        {
            address = _base + _next++ * _barSize;
        }
        else
        {
            address = 0;
            return false;
        }
        _inUse.Add(address);
        return true;
    }

    /// <summary>
    /// Takes the BAR at <paramref name="address"/> (a snapshot restore puts a function's BAR back where it was); false
    /// when it is not a BAR of this window or is taken. The BARs below it that were never handed out become free ones,
    /// so later allocations still go lowest first and never overlap it.
    /// </summary>
    public bool TryReserve(ulong address)
    {
        if (address < _base || (address - _base) % _barSize != 0) return false;
        ulong index = (address - _base) / _barSize;
        if (index >= _count || _inUse.Contains(address)) return false;
        if (index < _next) _freed.Remove(address);
        else
        {
            for (ulong i = _next; i < index; i++) _freed.Add(_base + i * _barSize);
            _next = index + 1;
        }
        _inUse.Add(address);
        return true;
    }

    /// <summary>Gives a BAR back; an address this allocator did not hand out (or already took back) is ignored.</summary>
    public bool Free(ulong address)
    {
        if (!_inUse.Remove(address)) return false;
        // The top of the bump area shrinks back; anything below it goes on the free list.
        if (address == _base + (_next - 1) * _barSize)
        {
            _next--;
            while (_next > 0 && _freed.Remove(_base + (_next - 1) * _barSize)) _next--;
        }
        else _freed.Add(address);
        return true;
    }
}
