using System.Buffers.Binary;

namespace Flint.Devices.Pci.Msix;

/// <summary>
/// A function's MSI-X state (PCI 3.0 6.8.2): the vector table (address, data, vector control per entry), the
/// pending bit array, and the enable / function-mask bits of message control. Delivery rule: a vector fires only
/// when MSI-X is enabled, the function is not masked and the entry is not masked; otherwise its pending bit is set,
/// and it fires when the last of those masks goes away. Table accesses are 4 or 8 bytes, aligned; anything else
/// reads all ones (or is ignored), as does an index past the table: the guest controls every offset and width.
/// Entries start masked, so nothing is delivered before the driver programs them.
/// </summary>
public sealed partial class MsixTable
{
    public const int MaxVectors = 2048;
    public const int EntrySize = 16;

    private readonly Lock _lock = new();
    private readonly IMsiVectors _vectors;
    private readonly uint[] _entries; // 4 dwords per vector: address lo, address hi, data, vector control
    private readonly ulong[] _pba;
    private readonly bool[] _routed; // the host route is enabled (what the last successful Route call said)
    private bool _enabled;
    private bool _functionMasked;

    public MsixTable(IMsiVectors vectors)
    {
        if (vectors.Count is < 1 or > MaxVectors) throw new ArgumentOutOfRangeException(nameof(vectors));
        _vectors = vectors;
        _entries = new uint[vectors.Count * 4];
        _pba = new ulong[(vectors.Count + 63) / 64];
        _routed = new bool[vectors.Count];
        for (int i = 0; i < vectors.Count; i++) _entries[i * 4 + 3] = 1; // masked
    }

    public int Count => _vectors.Count;

    /// <summary>Bytes the table occupies in its BAR; the PBA takes 8 bytes per 64 vectors.</summary>
    public int TableSize => Count * EntrySize;
    public int PbaSize => _pba.Length * 8;

    /// <summary>Route updates the host refused (also logged by the implementation of <see cref="IMsiVectors"/>).</summary>
    public long RouteFailures { get; private set; }

    public bool Enabled { get { lock (_lock) return _enabled; } }
    public bool FunctionMasked { get { lock (_lock) return _functionMasked; } }

    /// <summary>A write to message control; the capability's config register keeps the bits for reads.</summary>
    public void SetControl(ushort control)
    {
        lock (_lock)
        {
            bool enabled = (control & MsixCapability.EnableBit) != 0;
            bool masked = (control & MsixCapability.FunctionMaskBit) != 0;
            if (enabled == _enabled && masked == _functionMasked) return;
            _enabled = enabled;
            _functionMasked = masked;
            // Firecracker's interrupts.config_updates counts each batch of routes pushed to KVM.
            if (enabled && !masked) Interlocked.Increment(ref Metrics.InterruptMetrics.ConfigUpdates);
            for (int i = 0; i < Count; i++) RouteLocked(i);
            DeliverPendingLocked();
        }
    }

    public void ReadTable(ulong offset, Span<byte> data)
    {
        if (!TableAccess(offset, data.Length, out int index, out int dword))
        {
            data.Fill(0xff);
            return;
        }
        lock (_lock)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(data, _entries[index * 4 + dword]);
            if (data.Length == 8) BinaryPrimitives.WriteUInt32LittleEndian(data[4..], _entries[index * 4 + dword + 1]);
        }
    }

    public void WriteTable(ulong offset, ReadOnlySpan<byte> data)
    {
        if (!TableAccess(offset, data.Length, out int index, out int dword)) return;
        lock (_lock)
        {
            int at = index * 4 + dword;
            bool wasMasked = (_entries[index * 4 + 3] & 1) != 0;
            uint before0 = _entries[at], before1 = data.Length == 8 ? _entries[at + 1] : 0;
            _entries[at] = BinaryPrimitives.ReadUInt32LittleEndian(data);
            if (data.Length == 8) _entries[at + 1] = BinaryPrimitives.ReadUInt32LittleEndian(data[4..]);
            if (_entries[at] == before0 && (data.Length != 8 || _entries[at + 1] == before1)) return;
            if (Deliverable(index)) Interlocked.Increment(ref Metrics.InterruptMetrics.ConfigUpdates);
            // The spec lets software change a masked entry freely; an unmasked one we re-route at once (Linux only
            // rewrites an entry while it is masked, but a hostile guest gets consistent routing either way).
            RouteLocked(index);
            if (wasMasked && (_entries[index * 4 + 3] & 1) == 0) DeliverPendingLocked();
        }
    }

    public void ReadPba(ulong offset, Span<byte> data)
    {
        if ((data.Length != 4 && data.Length != 8) || (offset % (ulong)data.Length) != 0 || offset >= (ulong)PbaSize)
        {
            data.Fill(0xff);
            return;
        }
        lock (_lock)
        {
            ulong word = _pba[offset / 8];
            if (data.Length == 8) BinaryPrimitives.WriteUInt64LittleEndian(data, word);
            else BinaryPrimitives.WriteUInt32LittleEndian(data, (uint)(word >> (int)(8 * (offset & 4))));
        }
    }

    /// <summary>The PBA is read-only to software (spec): writes are ignored.</summary>
    public void WritePba(ulong offset, ReadOnlySpan<byte> data) { }

    /// <summary>
    /// Raises vector <paramref name="index"/>: delivered now when nothing masks it, else held in the PBA. A vector
    /// past the table (the driver may have chosen none) is ignored.
    /// </summary>
    public void Signal(int index)
    {
        if ((uint)index >= (uint)Count) return;
        lock (_lock)
        {
            if (Deliverable(index) && _routed[index]) _vectors.Trigger(index);
            else _pba[index / 64] |= 1UL << (index % 64);
        }
    }

    public bool IsPending(int index) { lock (_lock) return (uint)index < (uint)Count && (_pba[index / 64] & (1UL << (index % 64))) != 0; }

    public bool IsMasked(int index) { lock (_lock) return (uint)index < (uint)Count && (_entries[index * 4 + 3] & 1) != 0; }

    /// <summary>Function reset (virtio device reset, or a new driver): MSI-X off, entries masked, nothing pending.</summary>
    public void Reset()
    {
        lock (_lock)
        {
            _enabled = false;
            _functionMasked = false;
            Array.Clear(_entries);
            Array.Clear(_pba);
            for (int i = 0; i < Count; i++)
            {
                _entries[i * 4 + 3] = 1;
                RouteLocked(i);
            }
        }
    }

    private bool Deliverable(int index) => _enabled && !_functionMasked && (_entries[index * 4 + 3] & 1) == 0;

    /// <summary>Tells the host the vector's current message and whether it may be delivered.</summary>
    private void RouteLocked(int index)
    {
        bool enable = Deliverable(index);
        var message = new MsiMessage(_entries[index * 4], _entries[index * 4 + 1], _entries[index * 4 + 2]);
        if (!enable && !_routed[index]) return; // nothing to take down
        bool ok = _vectors.Route(index, message, enable);
        if (!ok) RouteFailures++;
        _routed[index] = enable && ok;
    }

    private void DeliverPendingLocked()
    {
        for (int i = 0; i < Count; i++)
        {
            ulong bit = 1UL << (i % 64);
            if ((_pba[i / 64] & bit) == 0 || !Deliverable(i) || !_routed[i]) continue;
            _pba[i / 64] &= ~bit;
            _vectors.Trigger(i);
        }
    }

    private bool TableAccess(ulong offset, int length, out int index, out int dword)
    {
        index = dword = 0;
        if ((length != 4 && length != 8) || (offset % (ulong)length) != 0 || offset >= (ulong)TableSize) return false;
        index = (int)(offset / EntrySize);
        dword = (int)(offset % EntrySize) / 4;
        return true;
    }
}
