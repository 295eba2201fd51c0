using System.Numerics;
using Flint.Snapshot;

namespace Flint.Devices.Virtio.Mem;

/// <summary>
/// virtio-mem in a snapshot (Firecracker's mem/persist.rs): what the configuration does not rebuild, the usable and
/// requested sizes and the plugged blocks (plugged_size follows from them). Restoring plugs again, through the VMM's
/// <see cref="IHotplugSlots"/>, exactly the slots that hold a plugged block, as Firecracker's from_state does; the
/// others stay unmapped for the guest and PROT_NONE for the VMM, as at run time.
/// </summary>
public sealed partial class VirtioMem
{
    /// <summary>The saved fields, read under the request lock (a copy of the bitmap).</summary>
    public (ulong UsableRegionSize, ulong RequestedSize, ulong PluggedSize, ulong[] PluggedWords) SaveState()
    {
        lock (_lock) return (_usable, _requested, _plugged, (ulong[])_blocks.Words.Clone());
    }

    /// <summary>
    /// Takes the saved fields on a device freshly built from the same configuration (nothing plugged yet), before any
    /// vCPU runs. The values were checked against each other already (<see cref="HotplugMemoryState.Read"/>); they are
    /// checked here against this device's geometry again, so no caller can hand it a bitmap that does not fit.
    /// </summary>
    public void RestoreState(ulong usable, ulong requested, ReadOnlySpan<ulong> pluggedWords)
    {
        var words = _blocks.Words;
        if (pluggedWords.Length != words.Length)
            throw new SnapshotFormatException($"virtio-mem: the saved bitmap holds {pluggedWords.Length} words, this device's {_blocks.Count} blocks need {words.Length}.");
        if (usable > RegionSize || usable % SlotSize != 0 || requested > RegionSize || requested % BlockSize != 0)
            throw new SnapshotFormatException("virtio-mem: the saved usable or requested size does not fit this device.");
        long tail = _blocks.Count % 64;
        if (tail != 0 && (pluggedWords[^1] >> (int)tail) != 0)
            throw new SnapshotFormatException("virtio-mem: the saved bitmap has bits past the last block.");
        ulong set = 0;
        foreach (ulong w in pluggedWords) set += (ulong)BitOperations.PopCount(w);
        lock (_lock)
        {
            if (_plugged != 0 || _blocks.CountSet(0, _blocks.Count) != 0)
                throw new InvalidOperationException("virtio-mem: restore onto a device with plugged memory");
            pluggedWords.CopyTo(words);
            Volatile.Write(ref _plugged, set * BlockSize);
            Volatile.Write(ref _usable, usable);
            Volatile.Write(ref _requested, requested);
            long bps = (long)_blocksPerSlot;
            for (int s = 0; s < _area.SlotCount; s++)
                if (_blocks.CountSet(s * bps, bps) != 0 && !_area.IsSlotPlugged(s)) _slots.Plug(s);
        }
    }
}
