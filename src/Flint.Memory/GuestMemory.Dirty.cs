using System.Runtime.CompilerServices;
using Flint.Sys;

namespace Flint.Memory;

/// <summary>
/// Dirty-page tracking on the VMM's side (machine-config / snapshot-load <c>track_dirty_pages</c>): every write the
/// VMM makes into guest RAM, through this class or through a host pointer it handed out, marks its pages here; KVM's
/// dirty log covers the vCPUs' writes. Off by default, and then marking costs one predictable branch.
/// </summary>
// SAFETY: the dirty bitmap is indexed by page numbers bounds-checked against the region it tracks.
public sealed unsafe partial class GuestMemory
{
    /// <summary>True once <see cref="EnableDirtyTracking"/> ran: writes mark their pages.</summary>
    public bool DirtyTracking { get; private set; }

    /// <summary>Gives each region its bitmap; call before any device or vCPU runs (the kernel load is then marked too).</summary>
    public void EnableDirtyTracking()
    {
        if (DirtyTracking) return;
        foreach (var r in _regions) r.Dirty = new DirtyPageBitmap(r.Size);
        if (_hotplug != null) _hotplug.Dirty = new DirtyPageBitmap(_hotplug.Size);
        DirtyTracking = true;
    }

    /// <summary>
    /// Marks the pages of [gpa, gpa+len) dirty: for writes made through a host pointer (virtqueue rings, device
    /// buffers read into by readv or io_uring, file reads into guest RAM). Parts outside guest RAM are ignored (the
    /// caller's own bounds check refuses those accesses). No-op while tracking is off.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void MarkDirty(ulong gpa, ulong len)
    {
        if (DirtyTracking && len != 0) MarkDirtyTracked(gpa, len);
    }

    private void MarkDirtyTracked(ulong gpa, ulong len)
    {
        while (len > 0)
        {
            var r = FindRegion(gpa);
            if (r == null) return;
            ulong n = Math.Min(len, r.GuestEnd - gpa);
            // A run of plugged hotplug slots has no bitmap of its own (the runs change as slots do): the area's one.
            if (r.Dirty != null) r.Dirty.Mark(gpa - r.GuestBase, n);
            else _hotplug?.Dirty?.Mark(gpa - _hotplug.GuestBase, n);
            len -= n;
            gpa += n;
        }
    }

    /// <summary>Every page clean on the VMM's side (after a snapshot saved them, or after a restore).</summary>
    public void ResetDirty()
    {
        foreach (var r in _regions) r.Dirty?.Clear();
        _hotplug?.Dirty?.Clear();
    }

    /// <summary>
    /// The pages of <paramref name="r"/> the host holds (mincore): Firecracker's Diff without <c>track_dirty_pages</c>.
    /// A page never touched is not resident (it reads as zeroes, or as the restored-from file's page), so this is a
    /// superset of the pages written, exact only without swap. Fills 64 pages a word, as KVM's dirty log.
    /// </summary>
    public static void ResidentPages(GuestRegion r, Span<ulong> bitmap)
    {
        ulong pages = r.Size / PageSize;
        if (bitmap.Length != DirtyPageBitmap.WordsFor(pages)) throw new ArgumentException("bitmap size does not fit the region");
        bitmap.Clear();
        const ulong ChunkPages = 1 << 16;
        var vec = new byte[(int)Math.Min(pages, ChunkPages)];
        for (ulong first = 0; first < pages; first += ChunkPages)
        {
            ulong n = Math.Min(ChunkPages, pages - first);
            fixed (byte* v = vec)
            {
                // SAFETY: [Host + first pages, + n pages) lies inside the region's mapping; vec holds n >= bytes.
                if (Libc.mincore(r.Host + first * PageSize, (nuint)(n * PageSize), v) < 0)
                    throw SysException.Last("mincore");
            }
            for (ulong i = 0; i < n; i++)
                if ((vec[i] & 1) != 0) bitmap[(int)((first + i) >> 6)] |= 1UL << (int)((first + i) & 63);
        }
    }
}
