using Flint.Sys;

namespace Flint.Memory;

/// <summary>
/// The hotplug area in snapshot memory files, as Firecracker's dump and dump_dirty walk its hotpluggable region slot
/// by slot: the area follows boot RAM in the file, a plugged slot's pages are written (Full: those holding data;
/// Diff: the dirty ones), an unplugged slot is a hole (its memory is PROT_NONE and is not the guest's). A restore maps
/// the area back from the file at that offset (or registers it with the uffd), all PROT_NONE; the restored device
/// then plugs exactly its plugged slots again.
/// </summary>
// SAFETY: slot views are built from HotplugArea.Slot (validated index, inside the area's mapping) and only read while plugged (read-write).
public sealed unsafe partial class GuestMemory
{
    /// <summary>Full dump of the area at <paramref name="fileOffset"/>: returns pages written.</summary>
    private ulong DumpHotplugArea(int fd, ulong fileOffset, byte[]? zeroes)
    {
        var a = _hotplug;
        if (a == null) return 0;
        ulong written = 0;
        for (int s = 0; s < a.SlotCount; s++)
        {
            ulong off = fileOffset + (ulong)s * a.SlotSize;
            if (!a.IsSlotPlugged(s))
            {
                // Not the guest's memory: a hole; in a kept file (the one this VM was restored from), no old data either.
                if (zeroes != null) ZeroExistingData(fd, off, off + a.SlotSize, zeroes);
                continue;
            }
            var view = SlotView(a, s);
            var candidates = new ulong[DirtyPageBitmap.WordsFor(a.SlotSize / PageSize)];
            // The slot lies at the same offset of the file this VM may have been restored from (same layout).
            PagesThatMayHoldData(view, off, candidates);
            written += WriteNonZeroRuns(fd, view, candidates, off, zeroes);
        }
        return written;
    }

    /// <summary>
    /// The plugged slots' dirty logs, asked for under their memory slot numbers (<see cref="HotplugArea.FirstSlot"/>
    /// + i), one bitmap per slot (null for an unplugged slot: nothing of it is written).
    /// </summary>
    private ulong[]?[] HotplugDirtyLogs(Action<int, GuestRegion, Span<ulong>> extraDirty)
    {
        var a = _hotplug;
        if (a == null) return [];
        var logs = new ulong[]?[a.SlotCount];
        for (int s = 0; s < a.SlotCount; s++)
        {
            if (!a.IsSlotPlugged(s)) continue;
            logs[s] = new ulong[DirtyPageBitmap.WordsFor(a.SlotSize / PageSize)];
            extraDirty((int)a.FirstSlot + s, SlotView(a, s), logs[s]);
        }
        return logs;
    }

    /// <summary>Diff dump of the area's plugged slots at <paramref name="fileOffset"/>: returns pages written.</summary>
    private ulong DumpHotplugDirty(int fd, ulong fileOffset, ulong[]?[] logs)
    {
        var a = _hotplug;
        if (a == null) return 0;
        ulong pages = 0, slotPages = a.SlotSize / PageSize;
        for (int s = 0; s < a.SlotCount; s++)
        {
            if (logs[s] is not { } log) continue;
            var bits = (ulong[])log.Clone();
            a.Dirty?.OrRangeInto((ulong)s * slotPages, bits);
            pages += WriteDirtyRuns(fd, SlotView(a, s), bits, fileOffset + (ulong)s * a.SlotSize);
        }
        return pages;
    }

    /// <summary>A failed Diff keeps the slots' KVM logs (which reading cleared) in the area's bitmap.</summary>
    private void KeepHotplugDirtyLogs(ulong[]?[] logs)
    {
        var a = _hotplug;
        if (a?.Dirty is not { } dirty) return;
        ulong slotPages = a.SlotSize / PageSize;
        for (int s = 0; s < logs.Length; s++)
            if (logs[s] is { } log) dirty.OrRangeFrom((ulong)s * slotPages, log);
    }

    private static GuestRegion SlotView(HotplugArea a, int slot)
    {
        var (gpa, host) = a.Slot(slot);
        return new GuestRegion(gpa, a.SlotSize, (byte*)host);
    }

    /// <summary>
    /// Snapshot load (File backend): the area mapped from <paramref name="fd"/> right after boot RAM. The caller
    /// checked the file's size against boot RAM plus the area.
    /// </summary>
    private void RestoreHotplugFromFile(HotplugLayout h, int fd)
    {
        CheckHotplugPlacement(h.GuestBase, h.Size);
        AdoptRestoredHotplug(HotplugArea.MapFile(h.GuestBase, h.Size, h.SlotSize, fd, TotalSize));
    }

    /// <summary>
    /// Snapshot load (Uffd backend): the area reserved anonymous and PROT_NONE, and registered whole with the uffd (as
    /// Firecracker registers its whole hotpluggable region): the handler serves a plugged slot's pages on first touch;
    /// an unplugged slot faults never (PROT_NONE), and a discard (MADV_DONTNEED) reaches the handler as a remove event.
    /// </summary>
    private void RestoreHotplugForUffd(HotplugLayout h, int uffd)
    {
        CheckHotplugPlacement(h.GuestBase, h.Size);
        var area = HotplugArea.Map(h.GuestBase, h.Size, h.SlotSize);
        AdoptRestoredHotplug(area); // Dispose unmaps it from here on, whatever fails next
        Userfaultfd.Register(uffd, (ulong)area.Host, area.Size);
        area.FaultHandlerAlive = () => FaultHandlerAlive;
    }
}
