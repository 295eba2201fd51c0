namespace Flint.Devices;

/// <summary>
/// An address space (PIO or MMIO) of non-overlapping ranges, each owned by one device.
/// Lookup is a binary search over a sorted array: no allocation on the exit path.
/// </summary>
public sealed class Bus
{
    private readonly record struct Range(ulong Base, ulong Length, IBusDevice Device);

    private Range[] _ranges = [];

    public void Insert(IBusDevice device, ulong baseAddress, ulong length)
    {
        if (length == 0) throw new ArgumentException("bus range length is 0");
        if (baseAddress + length < baseAddress) throw new ArgumentException("bus range wraps");
        foreach (var r in _ranges)
            if (baseAddress < r.Base + r.Length && r.Base < baseAddress + length)
                throw new ArgumentException($"bus range 0x{baseAddress:x}+0x{length:x} overlaps 0x{r.Base:x}+0x{r.Length:x}");
        var list = new List<Range>(_ranges) { new(baseAddress, length, device) };
        list.Sort((a, b) => a.Base.CompareTo(b.Base));
        // A new array swapped in whole: a vCPU thread resolving an address sees the old or the new table, never half.
        Volatile.Write(ref _ranges, list.ToArray());
    }

    /// <summary>
    /// Takes <paramref name="device"/>'s range at <paramref name="baseAddress"/> off the bus (PCI hot-unplug); false
    /// when that device is not there. An exit already dispatched to the device may still finish on a vCPU thread.
    /// </summary>
    public bool Remove(ulong baseAddress, IBusDevice device)
    {
        var rs = _ranges;
        int i = Array.FindIndex(rs, r => r.Base == baseAddress && ReferenceEquals(r.Device, device));
        if (i < 0) return false;
        var list = new List<Range>(rs);
        list.RemoveAt(i);
        Volatile.Write(ref _ranges, list.ToArray());
        return true;
    }

    /// <summary>Number of ranges on the bus (tests: nothing left behind by an unplug).</summary>
    public int Count => _ranges.Length;

    /// <summary>The device covering <paramref name="address"/> and the offset into it.</summary>
    public bool TryResolve(ulong address, out IBusDevice device, out ulong offset)
    {
        var rs = Volatile.Read(ref _ranges);
        int lo = 0, hi = rs.Length - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >> 1;
            var r = rs[mid];
            if (address < r.Base) hi = mid - 1;
            else if (address - r.Base >= r.Length) lo = mid + 1;
            else { device = r.Device; offset = address - r.Base; return true; }
        }
        device = null!;
        offset = 0;
        return false;
    }

    /// <summary>Dispatches a read; returns false (and leaves the data as all-ones, like an empty bus) when nothing is there.</summary>
    public bool Read(ulong address, Span<byte> data)
    {
        if (TryResolve(address, out var d, out var off)) { d.Read(off, data); return true; }
        data.Fill(0xff);
        return false;
    }

    public bool Write(ulong address, ReadOnlySpan<byte> data)
    {
        if (!TryResolve(address, out var d, out var off)) return false;
        d.Write(off, data);
        return true;
    }
}
