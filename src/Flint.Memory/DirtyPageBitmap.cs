using System.Runtime.CompilerServices;

namespace Flint.Memory;

/// <summary>
/// One bit per 4 KiB page of one guest RAM region: the pages the VMM itself wrote (virtio used rings, the guest
/// buffers a device fills, the kernel and boot data it loads). KVM's dirty log sees only what the guest's vCPUs
/// write; a Diff snapshot saves the union of the two. Bits are set with an atomic OR because device threads (the
/// VMM thread, the block engine's completions) and vCPU threads (legacy devices) mark concurrently. Marking
/// allocates nothing; the array is made once, when tracking is turned on.
/// </summary>
public sealed class DirtyPageBitmap
{
    private readonly ulong[] _words;

    public DirtyPageBitmap(ulong regionSize)
    {
        if (regionSize == 0 || regionSize % GuestMemory.PageSize != 0)
            throw new ArgumentException($"region size 0x{regionSize:x} is not a whole number of pages");
        Pages = regionSize / GuestMemory.PageSize;
        _words = new ulong[WordsFor(Pages)];
    }

    /// <summary>Pages covered (the region's size / 4 KiB).</summary>
    public ulong Pages { get; }

    /// <summary>Words a bitmap of <paramref name="pages"/> pages needs (KVM_GET_DIRTY_LOG's layout: 64 pages a word).</summary>
    public static int WordsFor(ulong pages) => checked((int)((pages + 63) / 64));

    public int WordCount => _words.Length;

    /// <summary>
    /// Marks every page that [offset, offset+len) touches, offsets relative to the region. The caller checked that
    /// the range lies in the region; len 0 marks nothing.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Mark(ulong offset, ulong len)
    {
        if (len == 0) return;
        ulong first = offset / GuestMemory.PageSize;
        ulong last = (offset + len - 1) / GuestMemory.PageSize;
        if (last >= Pages) throw new ArgumentOutOfRangeException(nameof(len), "range beyond the region");
        if (first == last)
        {
            // The common case (a used ring element, one small buffer): one word, one atomic OR, and none at all when
            // the bit is already set (a plain read first keeps the cache line shared between threads).
            ref ulong w = ref _words[first >> 6];
            ulong bit = 1UL << (int)(first & 63);
            if ((Volatile.Read(ref w) & bit) == 0) Interlocked.Or(ref w, bit);
            return;
        }
        for (ulong p = first; p <= last;)
        {
            int wi = (int)(p >> 6);
            int lo = (int)(p & 63);
            int hi = (int)Math.Min(63, lo + (long)(last - p));
            ulong mask = hi == 63 ? ~0UL << lo : ((1UL << (hi + 1)) - 1) & (~0UL << lo);
            ref ulong w = ref _words[wi];
            if ((Volatile.Read(ref w) & mask) != mask) Interlocked.Or(ref w, mask);
            p += (ulong)(hi - lo + 1);
        }
    }

    public bool IsDirty(ulong page) => page < Pages && (Volatile.Read(ref _words[page >> 6]) & (1UL << (int)(page & 63))) != 0;

    /// <summary>ORs this bitmap into <paramref name="into"/> (KVM's log for the same region, same layout).</summary>
    public void OrInto(Span<ulong> into)
    {
        if (into.Length != _words.Length) throw new ArgumentException("bitmap sizes differ");
        for (int i = 0; i < _words.Length; i++) into[i] |= Volatile.Read(ref _words[i]);
    }

    /// <summary>ORs <paramref name="from"/> into this bitmap: a failed Diff write keeps KVM's log here (it was cleared).</summary>
    public void OrFrom(ReadOnlySpan<ulong> from)
    {
        if (from.Length != _words.Length) throw new ArgumentException("bitmap sizes differ");
        for (int i = 0; i < _words.Length; i++)
            if (from[i] != 0) Interlocked.Or(ref _words[i], from[i]);
    }

    /// <summary>
    /// ORs pages [firstPage, firstPage + 64 * into.Length) of this bitmap (clipped to its end) into <paramref name="into"/>,
    /// bit 0 of into being firstPage: one slot of the hotplug area, in the layout of that slot's KVM dirty log.
    /// </summary>
    public void OrRangeInto(ulong firstPage, Span<ulong> into)
    {
        ulong n = Math.Min((ulong)into.Length * 64, Pages - Math.Min(Pages, firstPage));
        for (ulong i = 0; i < n; i++)
            if (IsDirty(firstPage + i)) into[(int)(i >> 6)] |= 1UL << (int)(i & 63);
    }

    /// <summary>The reverse of <see cref="OrRangeInto"/>: a failed Diff write keeps a slot's KVM log here.</summary>
    public void OrRangeFrom(ulong firstPage, ReadOnlySpan<ulong> from)
    {
        ulong n = Math.Min((ulong)from.Length * 64, Pages - Math.Min(Pages, firstPage));
        for (ulong i = 0; i < n; i++)
            if ((from[(int)(i >> 6)] & (1UL << (int)(i & 63))) != 0) Mark((firstPage + i) * GuestMemory.PageSize, 1);
    }

    /// <summary>Every page clean again (after a snapshot wrote them).</summary>
    public void Clear()
    {
        for (int i = 0; i < _words.Length; i++) Volatile.Write(ref _words[i], 0);
    }

    /// <summary>Dirty pages now (tests, logs).</summary>
    public ulong CountDirty()
    {
        ulong n = 0;
        for (int i = 0; i < _words.Length; i++) n += (ulong)System.Numerics.BitOperations.PopCount(Volatile.Read(ref _words[i]));
        return n;
    }
}
