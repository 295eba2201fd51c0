using Flint.Sys;

namespace Flint.Memory;

/// <summary>
/// The virtio-mem hotplug area: one host mapping for the whole guest-physical window, cut into equal KVM slots
/// (Firecracker's slot scheme). A slot is either plugged (host memory readable and writable, registered with KVM by
/// the VMM, reachable through <see cref="GuestMemory"/>'s accessors) or unplugged (PROT_NONE, not in KVM, and not a
/// guest address the VMM resolves, so a device given such an address by the guest refuses it instead of faulting).
/// The mapping is MAP_NORESERVE and starts PROT_NONE: an area that is never plugged costs address space, not memory.
/// Slot state changes only on the VMM thread (virtio-mem requests); lookups publish a fresh immutable table, so a
/// reader on any thread sees either the old or the new layout, never half of one.
/// </summary>
// SAFETY: one PROT_NONE reservation of the area's size; slot pointers are computed from validated slot indices inside it.
public sealed unsafe class HotplugArea
{
    private readonly bool[] _plugged;
    // Per slot: the region covering the maximal run of plugged slots the slot belongs to (so a buffer crossing from one
    // plugged slot into the next still resolves as one host range); null when the slot is unplugged.
    private GuestRegion?[] _lookup;

    public ulong GuestBase { get; }
    public ulong Size { get; }
    public ulong SlotSize { get; }
    public int SlotCount { get; }
    public byte* Host { get; }
    public ulong GuestEnd => GuestBase + Size;

    /// <summary>
    /// The memory slot number of slot 0 in the VMM's numbering (slot i is FirstSlot + i): a Diff snapshot asks for the
    /// dirty log of each plugged slot under that number.
    /// </summary>
    public uint FirstSlot { get; set; }

    /// <summary>
    /// Offset of the area in the snapshot memory file it is mapped from (MAP_PRIVATE), or -1 for anonymous memory.
    /// A file-backed area cannot discard with MADV_DONTNEED (the file's pages would come back): see <see cref="Discard"/>.
    /// </summary>
    public long FileOffset { get; private init; } = -1;

    /// <summary>The pages the VMM wrote in the area since the last snapshot; null while dirty tracking is off.</summary>
    public DirtyPageBitmap? Dirty { get; internal set; }

    /// <summary>For an area restored with the Uffd backend: whether its page-fault handler still runs (GuestMemory.FaultHandlerAlive).</summary>
    internal Func<bool>? FaultHandlerAlive { get; set; }

    private HotplugArea(ulong guestBase, ulong size, ulong slotSize, byte* host)
    {
        GuestBase = guestBase;
        Size = size;
        SlotSize = slotSize;
        SlotCount = (int)(size / slotSize);
        Host = host;
        _plugged = new bool[SlotCount];
        _lookup = new GuestRegion?[SlotCount];
    }

    internal static HotplugArea Map(ulong guestBase, ulong size, ulong slotSize)
    {
        CheckGeometry(guestBase, size, slotSize);
        // SAFETY: a new anonymous mapping owned by the area until Unmap; PROT_NONE until a slot is plugged, so
        // nothing (guest or VMM) can touch memory that was never handed to the guest.
        void* p = Libc.mmap(null, (nuint)size, Libc.PROT_NONE, Libc.MAP_PRIVATE | Libc.MAP_ANONYMOUS | Libc.MAP_NORESERVE, -1, 0);
        if ((nint)p == Libc.MAP_FAILED) throw SysException.Last($"mmap hotplug memory ({size >> 20} MiB)");
        Libc.madvise(p, (nuint)size, Libc.MADV_DONTDUMP);
        return new HotplugArea(guestBase, size, slotSize, (byte*)p);
    }

    /// <summary>
    /// The area of a restored VM: MAP_PRIVATE from the snapshot's memory file at <paramref name="fileOffset"/> (pages
    /// read on first touch, copied on first write), all PROT_NONE until the restored device plugs its slots again.
    /// The caller checked that the file holds [fileOffset, fileOffset + size).
    /// </summary>
    internal static HotplugArea MapFile(ulong guestBase, ulong size, ulong slotSize, int fd, ulong fileOffset)
    {
        CheckGeometry(guestBase, size, slotSize);
        if (fileOffset % GuestMemory.PageSize != 0 || fileOffset > long.MaxValue - size)
            throw new ArgumentException($"hotplug area at file offset 0x{fileOffset:x} is not page aligned");
        // SAFETY: a new private mapping of the file owned by the area until Unmap; PROT_NONE as an anonymous area starts.
        void* p = Libc.mmap(null, (nuint)size, Libc.PROT_NONE, Libc.MAP_PRIVATE | Libc.MAP_NORESERVE, fd, (long)fileOffset);
        if ((nint)p == Libc.MAP_FAILED) throw SysException.Last($"mmap hotplug memory ({size >> 20} MiB) from the memory file");
        Libc.madvise(p, (nuint)size, Libc.MADV_DONTDUMP);
        return new HotplugArea(guestBase, size, slotSize, (byte*)p) { FileOffset = (long)fileOffset };
    }

    private static void CheckGeometry(ulong guestBase, ulong size, ulong slotSize)
    {
        if (size == 0 || slotSize == 0 || guestBase % GuestMemory.PageSize != 0 || slotSize % GuestMemory.PageSize != 0
            || size % slotSize != 0 || guestBase + size < guestBase || size / slotSize > int.MaxValue)
            throw new ArgumentException($"hotplug area 0x{guestBase:x}+0x{size:x} (slots of 0x{slotSize:x}) is not page aligned or not whole slots");
    }

    /// <summary>True when this area has the geometry given (a restored area is taken by the builder only if so).</summary>
    public bool Is(ulong guestBase, ulong size, ulong slotSize) => GuestBase == guestBase && Size == size && SlotSize == slotSize;

    public bool IsSlotPlugged(int slot) => Volatile.Read(ref _plugged[slot]);

    /// <summary>Guest-physical base and host address of slot <paramref name="slot"/>.</summary>
    public (ulong GuestBase, nint Host) Slot(int slot)
    {
        if ((uint)slot >= (uint)SlotCount) throw new ArgumentOutOfRangeException(nameof(slot));
        ulong off = (ulong)slot * SlotSize;
        return (GuestBase + off, (nint)(Host + off));
    }

    /// <summary>
    /// Plugged: the slot's host memory becomes readable and writable, then resolvable. Unplugged: it stops resolving,
    /// then becomes PROT_NONE. (The VMM adds a slot to KVM after making it accessible and removes it from KVM before
    /// protecting it, as Firecracker's update_slot does.)
    /// </summary>
    public void SetSlotAccessible(int slot, bool accessible)
    {
        var (_, host) = Slot(slot);
        if (accessible)
        {
            // SAFETY: [host, host+SlotSize) is one slot of this area's own mapping.
            if (Libc.mprotect((void*)host, (nuint)SlotSize, Libc.PROT_READ | Libc.PROT_WRITE) < 0)
                throw SysException.Last("mprotect hotplug slot read-write");
            Volatile.Write(ref _plugged[slot], true);
            Rebuild();
        }
        else
        {
            Volatile.Write(ref _plugged[slot], false);
            Rebuild();
            // SAFETY: as above; the slot no longer resolves, so no new VMM access can reach it.
            if (Libc.mprotect((void*)host, (nuint)SlotSize, Libc.PROT_NONE) < 0)
                throw SysException.Last("mprotect hotplug slot PROT_NONE");
        }
    }

    /// <summary>
    /// Returns [gpa, gpa+len) to the host (MADV_DONTNEED: the next touch reads zeroes). The range must be page aligned
    /// and inside the area; its slots may be plugged or not (madvise needs no access rights).
    /// </summary>
    public void Discard(ulong gpa, ulong len)
    {
        if (gpa < GuestBase || len > Size || gpa - GuestBase > Size - len || gpa % GuestMemory.PageSize != 0 || len % GuestMemory.PageSize != 0)
            throw new GuestMemoryException(gpa, len);
        if (len == 0) return;
        // The pages change (to zeroes) without any write KVM could log: a Diff snapshot must see them.
        Dirty?.Mark(gpa - GuestBase, len);
        if (FileOffset >= 0)
        {
            DiscardFileBacked(gpa - GuestBase, len);
            return;
        }
        if (FaultHandlerAlive?.Invoke() == false) return; // as GuestMemory.Discard: the madvise would wait forever
        // SAFETY: checked above to lie inside this area's mapping.
        if (Libc.madvise(Host + (gpa - GuestBase), (nuint)len, Libc.MADV_DONTNEED) < 0)
            throw SysException.Last("madvise(MADV_DONTNEED) hotplug memory");
    }

    /// <summary>
    /// Discard in an area mapped from a memory file: MADV_DONTNEED would drop the guest's copies and bring the file's
    /// pages back, so fresh anonymous pages replace the range (as GuestMemory.Discard does for restored RAM), each
    /// slot's piece with that slot's protection (an unplugged slot stays PROT_NONE).
    /// </summary>
    private void DiscardFileBacked(ulong off, ulong len)
    {
        ulong end = off + len;
        while (off < end)
        {
            int slot = (int)(off / SlotSize);
            ulong n = Math.Min(end, (ulong)(slot + 1) * SlotSize) - off;
            int prot = IsSlotPlugged(slot) ? Libc.PROT_READ | Libc.PROT_WRITE : Libc.PROT_NONE;
            // SAFETY: [Host+off, +n) is page aligned and lies inside one slot of this area's own mapping (Discard
            // checked the range); MAP_FIXED replaces exactly those pages, and Unmap's munmap covers them as before.
            void* q = Libc.mmap(Host + off, (nuint)n, prot, Libc.MAP_FIXED | Libc.MAP_PRIVATE | Libc.MAP_ANONYMOUS | Libc.MAP_NORESERVE, -1, 0);
            if ((nint)q == Libc.MAP_FAILED) throw SysException.Last("mmap(MAP_FIXED) over discarded hotplug memory");
            Libc.madvise(q, (nuint)n, Libc.MADV_DONTDUMP);
            off += n;
        }
    }

    /// <summary>The plugged run holding <paramref name="gpa"/>, or null (outside the area, or an unplugged slot).</summary>
    internal GuestRegion? Find(ulong gpa)
    {
        if (gpa < GuestBase || gpa - GuestBase >= Size) return null;
        return Volatile.Read(ref _lookup)[(gpa - GuestBase) / SlotSize];
    }

    private void Rebuild()
    {
        var table = new GuestRegion?[SlotCount];
        int i = 0;
        while (i < SlotCount)
        {
            if (!_plugged[i]) { i++; continue; }
            int start = i;
            while (i < SlotCount && _plugged[i]) i++;
            ulong off = (ulong)start * SlotSize;
            var run = new GuestRegion(GuestBase + off, (ulong)(i - start) * SlotSize, Host + off);
            for (int j = start; j < i; j++) table[j] = run;
        }
        Volatile.Write(ref _lookup, table);
    }

    internal void Unmap() => Libc.munmap(Host, (nuint)Size);
}
