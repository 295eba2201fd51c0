namespace Flint.Snapshot;

/// <summary>
/// What the memory file written beside a state file holds: all of guest RAM (Full), or only the pages dirtied since
/// the previous snapshot (Diff: a sparse file in the full layout, to merge onto its base), the page size the dirty
/// pages were counted in, and how they were found. Its own section, so a state file written before Diff existed
/// (no such section) reads as Full.
/// </summary>
public sealed record MemoryFileInfo(MemoryFileKind Kind, uint PageSize, DirtySource Source)
{
    public const string SectionName = "memory_file";

    public static readonly MemoryFileInfo Full = new(MemoryFileKind.Full, 4096, DirtySource.None);

    public void Write(StateWriter w)
    {
        w.U8((byte)Kind);
        w.U32(PageSize);
        w.U8((byte)Source);
    }

    public static MemoryFileInfo Read(StateReader r)
    {
        byte kind = r.U8();
        uint page = r.U32();
        byte source = r.U8();
        r.ExpectEnd();
        if (kind > (byte)MemoryFileKind.Diff) throw new SnapshotFormatException($"Section {SectionName}: unknown memory file kind {kind}.");
        if (page < 4096 || page > (1u << 30) || (page & (page - 1)) != 0)
            throw new SnapshotFormatException($"Section {SectionName}: page size {page} is not a power of two from 4 KiB to 1 GiB.");
        if (source > (byte)DirtySource.Mincore) throw new SnapshotFormatException($"Section {SectionName}: unknown dirty page source {source}.");
        return new MemoryFileInfo((MemoryFileKind)kind, page, (DirtySource)source);
    }

    /// <summary>The file's record, or <see cref="Full"/> when it has none (written before Diff snapshots existed).</summary>
    public static MemoryFileInfo Of(SnapshotFile f) => f.Has(SectionName) ? Read(f.Open(SectionName)) : Full;
}

public enum MemoryFileKind : byte { Full = 0, Diff = 1 }

/// <summary>How a Diff's pages were chosen: KVM's dirty log plus the VMM's own writes, or resident pages (mincore).</summary>
public enum DirtySource : byte { None = 0, DirtyLog = 1, Mincore = 2 }
