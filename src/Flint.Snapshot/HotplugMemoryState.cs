using System.Numerics;

namespace Flint.Snapshot;

/// <summary>
/// The virtio-mem device and its hotplug area in a snapshot (section <see cref="SectionName"/>, docs/snapshots.md):
/// Firecracker's VirtioMemState (addr, region_size, block_size, slot_size, usable_region_size, requested_size, the
/// plugged-block bitmap) plus the plugged size it derives and where the area lies in the memory file. The queue and
/// transport state are the virtio/N and runtime/N sections, as for every virtio device.
/// Everything is hostile until <see cref="Read"/> has checked it: sizes against each other (block a power of two of at
/// least a page, slots whole blocks, the region whole slots), the bitmap's length against the block count, no bit
/// past the last block or past the usable region, and plugged_size == popcount × block_size, before any of it is used.
/// </summary>
public sealed record HotplugMemoryState(
    ulong GuestBase, ulong RegionSize, ulong SlotSize, ulong BlockSize,
    ulong UsableRegionSize, ulong RequestedSize, ulong PluggedSize, ulong FileOffset, ulong[] PluggedWords)
{
    public const string SectionName = "virtio-mem";

    /// <summary>Bumped when the layout changes; a reader refuses versions it does not know.</summary>
    public const uint Version = 1;

    /// <summary>The largest region a state may claim (Firecracker reserves 512 GiB for it); the load checks the configuration's too.</summary>
    public const ulong MaxRegionSize = 512UL << 30;

    private const ulong PageSize = 4096;

    public ulong BlockCount => RegionSize / BlockSize;
    public ulong SlotCount => RegionSize / SlotSize;

    /// <summary>True when block <paramref name="block"/> is plugged (the index must be below <see cref="BlockCount"/>).</summary>
    public bool IsPlugged(ulong block) => (PluggedWords[(int)(block >> 6)] & (1UL << (int)(block & 63))) != 0;

    /// <summary>True when any block of slot <paramref name="slot"/> is plugged: the slot is mapped for the guest.</summary>
    public bool IsSlotPlugged(ulong slot)
    {
        ulong per = SlotSize / BlockSize;
        for (ulong b = slot * per; b < (slot + 1) * per; b++)
            if (IsPlugged(b)) return true;
        return false;
    }

    public void Write(StateWriter w)
    {
        w.U32(Version);
        w.U64(GuestBase);
        w.U64(RegionSize);
        w.U64(SlotSize);
        w.U64(BlockSize);
        w.U64(UsableRegionSize);
        w.U64(RequestedSize);
        w.U64(PluggedSize);
        w.U64(FileOffset);
        w.U32((uint)PluggedWords.Length);
        foreach (ulong word in PluggedWords) w.U64(word);
    }

    /// <summary>Reads and checks the section (see the class comment); <see cref="SnapshotFormatException"/> names what is wrong.</summary>
    public static HotplugMemoryState Read(StateReader r)
    {
        uint version = r.U32();
        if (version != Version) throw Bad($"unknown version {version} (this build reads {Version})");
        ulong guestBase = r.U64(), region = r.U64(), slot = r.U64(), block = r.U64();
        ulong usable = r.U64(), requested = r.U64(), plugged = r.U64(), fileOffset = r.U64();
        if (block < PageSize || (block & (block - 1)) != 0) throw Bad($"block size {block} is not a power of two of at least {PageSize}");
        if (slot == 0 || slot % block != 0) throw Bad($"slot size {slot} is not a whole number of {block}-byte blocks");
        if (region == 0 || region % slot != 0 || region > MaxRegionSize) throw Bad($"region size {region} is not a whole number of {slot}-byte slots up to {MaxRegionSize}");
        if (guestBase % PageSize != 0 || guestBase > ulong.MaxValue - region) throw Bad($"region 0x{guestBase:x}+0x{region:x} is not page aligned or wraps");
        if (fileOffset % PageSize != 0 || fileOffset > long.MaxValue - region) throw Bad($"memory file offset 0x{fileOffset:x} is not page aligned");
        if (usable > region || usable % slot != 0) throw Bad($"usable region size {usable} is not a whole number of slots within the region");
        if (requested > region || requested % block != 0) throw Bad($"requested size {requested} is not a whole number of blocks within the region");
        ulong blocks = region / block;
        int words = (int)((blocks + 63) / 64); // at most 2^39 / 2^12 / 64 = 2 Mi words
        int n = r.Count(words);
        if (n != words) throw Bad($"the plugged-block bitmap holds {n} words, {blocks} blocks need {words}");
        var bits = new ulong[words];
        for (int i = 0; i < words; i++) bits[i] = r.U64();
        r.ExpectEnd();
        if (blocks % 64 != 0 && (bits[^1] >> (int)(blocks % 64)) != 0) throw Bad("the plugged-block bitmap has bits past the last block");
        ulong set = 0, usableBlocks = usable / block;
        for (int i = 0; i < words; i++)
        {
            set += (ulong)BitOperations.PopCount(bits[i]);
            // A plugged block past the usable region: the guest could not have plugged it (UNPLUG_ALL resets both).
            if (bits[i] != 0 && (ulong)i * 64 + 63 - (ulong)BitOperations.LeadingZeroCount(bits[i]) >= usableBlocks)
                throw Bad($"a plugged block lies past the usable region ({usable} bytes)");
        }
        if (set * block != plugged) throw Bad($"plugged size {plugged} is not the {set} plugged blocks of {block} bytes");
        return new HotplugMemoryState(guestBase, region, slot, block, usable, requested, plugged, fileOffset, bits);
    }

    private static SnapshotFormatException Bad(string what) => new($"Section {SectionName}: {what}.");
}
