using System.Runtime.CompilerServices;
using Flint.Sys;

namespace Flint.Memory;

/// <summary>
/// Guest RAM: anonymous private mappings, one per region, with bounds-checked guest-physical access.
/// Every read or write either lies wholly inside guest RAM or throws <see cref="GuestMemoryException"/>;
/// no access may wrap around or reach host memory outside the mappings.
/// </summary>
// SAFETY: every host pointer handed out is checked to lie within one mapped region (GetHostPointer), mappings live until Dispose.
public sealed unsafe partial class GuestMemory : IDisposable
{
    public const ulong PageSize = 4096;

    private readonly GuestRegion[] _regions;
    private bool _disposed;

    public IReadOnlyList<GuestRegion> Regions => _regions;
    public ulong TotalSize { get; }

    /// <summary>True when the regions are private mappings of a snapshot's memory file (see <see cref="Discard"/>).</summary>
    private readonly bool _fileBacked;

    private GuestMemory(GuestRegion[] regions, bool fileBacked = false)
    {
        _regions = regions;
        _fileBacked = fileBacked;
        foreach (var r in regions) TotalSize += r.Size;
    }

    /// <summary>2 MiB: the huge page size <see cref="HugePages.HugeTlb2M"/> maps with.</summary>
    public const ulong HugePageSize = 2UL << 20;

    /// <summary>
    /// Maps anonymous memory for each (base, size) range; ranges must be page aligned, sorted and disjoint.
    /// <paramref name="hugePages"/>: Firecracker's machine-config huge_pages. "2M" backs guest RAM with hugetlbfs pages
    /// (reserved at mmap, so a host without enough free ones fails here, not at a guest fault later); "Transparent"
    /// asks for transparent huge pages on ordinary anonymous memory.
    /// </summary>
    public static GuestMemory Create(IEnumerable<(ulong GuestBase, ulong Size)> ranges, HugePages hugePages = HugePages.None)
    {
        var list = new List<GuestRegion>();
        ulong prevEnd = 0;
        try
        {
            foreach (var (gb, size) in ranges.OrderBy(r => r.GuestBase))
            {
                if (size == 0 || gb % PageSize != 0 || size % PageSize != 0)
                    throw new ArgumentException($"region 0x{gb:x}+0x{size:x} is not page aligned");
                if (gb < prevEnd) throw new ArgumentException($"region 0x{gb:x} overlaps the previous one");
                if (gb + size < gb) throw new ArgumentException("region wraps the address space");
                bool tlb = hugePages == HugePages.HugeTlb2M;
                if (tlb && (gb % HugePageSize != 0 || size % HugePageSize != 0))
                    throw new ArgumentException($"region 0x{gb:x}+0x{size:x} is not 2 MiB aligned (huge pages)");
                int flags = Libc.MAP_PRIVATE | Libc.MAP_ANONYMOUS | (tlb ? Libc.MAP_HUGETLB | Libc.MAP_HUGE_2MB : Libc.MAP_NORESERVE);
                void* p = Libc.mmap(null, (nuint)size, Libc.PROT_READ | Libc.PROT_WRITE, flags, -1, 0);
                if ((nint)p == Libc.MAP_FAILED)
                {
                    if (tlb && Libc.Errno == 12)
                        throw new SysException($"mmap guest memory ({size >> 20} MiB) on 2 MiB huge pages (too few free: see " +
                            "HugePages_Free in /proc/meminfo, reserve more in /proc/sys/vm/nr_hugepages)", 12);
                    throw SysException.Last($"mmap guest memory ({size >> 20} MiB)");
                }
                if (hugePages == HugePages.Transparent) Libc.madvise(p, (nuint)size, Libc.MADV_HUGEPAGE);
                // Guest RAM never belongs in a VMM core dump: it is large and it is the guest's data.
                Libc.madvise(p, (nuint)size, Libc.MADV_DONTDUMP);
                list.Add(new GuestRegion(gb, size, (byte*)p));
                prevEnd = gb + size;
            }
        }
        catch
        {
            foreach (var r in list) Libc.munmap(r.Host, (nuint)r.Size);
            throw;
        }
        return new GuestMemory(list.ToArray());
    }

    /// <summary>The region holding <paramref name="gpa"/>, or null.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public GuestRegion? FindRegion(ulong gpa)
    {
        var rs = _regions;
        for (int i = 0; i < rs.Length; i++)
            if (rs[i].Contains(gpa)) return rs[i];
        // Boot RAM first: the common case costs one null check more.
        return _hotplug?.Find(gpa);
    }

    /// <summary>True when [gpa, gpa+len) lies inside a single region (len 0 is valid at any RAM address).</summary>
    public bool IsValidRange(ulong gpa, ulong len)
    {
        var r = FindRegion(gpa);
        return r != null && len <= r.GuestEnd - gpa;
    }

    /// <summary>
    /// Host pointer for [gpa, gpa+len) when the whole range lies in one region; null otherwise.
    /// The hot paths (virtqueues, block I/O) use this to reach guest buffers without copies.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public byte* TryGetHostPointer(ulong gpa, ulong len)
    {
        var r = FindRegion(gpa);
        if (r == null || len > r.GuestEnd - gpa) return null;
        return r.Host + (gpa - r.GuestBase);
    }

    public byte* GetHostPointer(ulong gpa, ulong len)
    {
        byte* p = TryGetHostPointer(gpa, len);
        if (p == null) throw new GuestMemoryException(gpa, len);
        return p;
    }

    /// <summary>A span over guest memory; throws when the range is not wholly inside one region.</summary>
    public Span<byte> GetSpan(ulong gpa, int len)
    {
        if (len < 0) throw new GuestMemoryException(gpa, (ulong)(long)len);
        return new Span<byte>(GetHostPointer(gpa, (ulong)len), len);
    }

    public T Read<T>(ulong gpa) where T : unmanaged => Unsafe.ReadUnaligned<T>(GetHostPointer(gpa, (ulong)sizeof(T)));

    public void Write<T>(ulong gpa, T value) where T : unmanaged
    {
        Unsafe.WriteUnaligned(GetHostPointer(gpa, (ulong)sizeof(T)), value);
        MarkDirty(gpa, (ulong)sizeof(T));
    }

    /// <summary>Copies guest bytes out; the range may span adjacent regions.</summary>
    public void Read(ulong gpa, Span<byte> dst)
    {
        while (dst.Length > 0)
        {
            var r = FindRegion(gpa) ?? throw new GuestMemoryException(gpa, (ulong)dst.Length);
            int n = (int)Math.Min((ulong)dst.Length, r.GuestEnd - gpa);
            new ReadOnlySpan<byte>(r.Host + (gpa - r.GuestBase), n).CopyTo(dst);
            dst = dst[n..];
            gpa += (ulong)n;
        }
    }

    /// <summary>Copies bytes into guest memory; the range may span adjacent regions. Checked whole before any write.</summary>
    public void Write(ulong gpa, ReadOnlySpan<byte> src)
    {
        CheckRange(gpa, (ulong)src.Length);
        MarkDirty(gpa, (ulong)src.Length);
        while (src.Length > 0)
        {
            var r = FindRegion(gpa)!;
            int n = (int)Math.Min((ulong)src.Length, r.GuestEnd - gpa);
            src[..n].CopyTo(new Span<byte>(r.Host + (gpa - r.GuestBase), n));
            src = src[n..];
            gpa += (ulong)n;
        }
    }

    public void Fill(ulong gpa, ulong len, byte value)
    {
        CheckRange(gpa, len);
        MarkDirty(gpa, len);
        while (len > 0)
        {
            var r = FindRegion(gpa)!;
            ulong n = Math.Min(len, r.GuestEnd - gpa);
            new Span<byte>(r.Host + (gpa - r.GuestBase), checked((int)n)).Fill(value);
            len -= n;
            gpa += n;
        }
    }

    private void CheckRange(ulong gpa, ulong len)
    {
        ulong a = gpa, left = len;
        while (left > 0)
        {
            var r = FindRegion(a) ?? throw new GuestMemoryException(gpa, len);
            ulong n = Math.Min(left, r.GuestEnd - a);
            left -= n;
            a += n;
        }
        if (len == 0 && FindRegion(gpa) == null) throw new GuestMemoryException(gpa, len);
    }

    /// <summary>
    /// Returns the pages of [gpa, gpa+len) to the host; the guest sees zeroes on next touch. The range must lie in one
    /// region. Anonymous RAM: MADV_DONTNEED. RAM restored from a snapshot is a private mapping of the memory file,
    /// where MADV_DONTNEED would drop the guest's copies but bring the file's pages back; there a fresh anonymous
    /// mapping replaces the range (Firecracker's discard_range does the same), so both cases read zeroes.
    /// </summary>
    public void Discard(ulong gpa, ulong len)
    {
        byte* p = GetHostPointer(gpa, len);
        if (_shared)
        {
            // A shared memfd mapping keeps its pages in the file: MADV_DONTNEED would only unmap them and the next touch
            // would read the old data back. MADV_REMOVE frees them from the file, so they read as zeroes.
            if (Libc.madvise(p, (nuint)len, Libc.MADV_REMOVE) < 0) throw SysException.Last("madvise(MADV_REMOVE)");
            MarkDirty(gpa, len);
            return;
        }
        if (!_fileBacked)
        {
            // With the Uffd backend's handler gone the madvise would wait forever for it (see FaultHandlerAlive): the
            // pages stay as they are, and the VMM thread stays free to answer the API.
            if (!FaultHandlerAlive) return;
            if (Libc.madvise(p, (nuint)len, Libc.MADV_DONTNEED) < 0) throw SysException.Last("madvise(MADV_DONTNEED)");
            // The pages changed (to zeroes) without any write KVM could log.
            MarkDirty(gpa, len);
            return;
        }
        if (gpa % PageSize != 0 || len % PageSize != 0) throw new GuestMemoryException(gpa, len);
        // SAFETY: [p, p+len) is page aligned and lies inside one region's mapping (GetHostPointer checked it), which
        // this object owns until Dispose; MAP_FIXED replaces exactly those pages with new private zero pages, and the
        // region's munmap on Dispose covers them as before.
        void* q = Libc.mmap(p, (nuint)len, Libc.PROT_READ | Libc.PROT_WRITE,
            Libc.MAP_FIXED | Libc.MAP_PRIVATE | Libc.MAP_ANONYMOUS | Libc.MAP_NORESERVE, -1, 0);
        if ((nint)q == Libc.MAP_FAILED) throw SysException.Last("mmap(MAP_FIXED) over discarded guest memory");
        Libc.madvise(q, (nuint)len, Libc.MADV_DONTDUMP);
        // The pages changed (to zeroes) without any write KVM could log.
        MarkDirty(gpa, len);
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var r in _regions) Libc.munmap(r.Host, (nuint)r.Size);
        _hotplug?.Unmap();
        _backing?.Dispose();
    }
}

/// <summary>How guest RAM is backed: Firecracker's machine-config huge_pages ("None", "2M"), plus "Transparent".</summary>
public enum HugePages { None, HugeTlb2M, Transparent }
