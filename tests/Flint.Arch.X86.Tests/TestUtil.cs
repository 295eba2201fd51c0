using System.Buffers.Binary;
using Flint.Memory;

namespace Flint.Arch.X86.Tests;

/// <summary>Guest memory and temporary files for tests; memory is real anonymous mmap, no KVM needed.</summary>
internal sealed class TempFiles : IDisposable
{
    private readonly List<string> _paths = [];

    public string Write(byte[] content)
    {
        string p = Path.Combine(Path.GetTempPath(), $"flint-x86-{Guid.NewGuid():N}");
        File.WriteAllBytes(p, content);
        _paths.Add(p);
        return p;
    }

    public void Dispose()
    {
        foreach (var p in _paths) try { File.Delete(p); } catch (IOException) { }
    }
}

internal static class Mem
{
    public const ulong MiB = 1 << 20;
    public static GuestMemory Create(ulong bytes) => GuestMemory.Create(MemoryLayout.RamRanges(bytes));

    public static ushort U16(GuestMemory m, ulong a) => m.Read<ushort>(a);
    public static uint U32(GuestMemory m, ulong a) => m.Read<uint>(a);
    public static ulong U64(GuestMemory m, ulong a) => m.Read<ulong>(a);
}

internal static class Le
{
    public static void W16(byte[] b, int o, ushort v) => BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(o), v);
    public static void W32(byte[] b, int o, uint v) => BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(o), v);
    public static void W64(byte[] b, int o, ulong v) => BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(o), v);
    public static uint R32(ReadOnlySpan<byte> b, int o) => BinaryPrimitives.ReadUInt32LittleEndian(b[o..]);
}

/// <summary>Hand-built ELF64 images: header, program headers, optional note segment/section, segment data.</summary>
internal sealed class ElfBuilder
{
    public byte Class = 2;
    public ushort Machine = 62;
    public ushort Type = 2;
    public ulong Entry = 0x100_0000;
    public readonly List<(ulong Paddr, byte[] Data, ulong MemSize)> Loads = [];
    public uint? PvhEntry;
    public bool NoteAsSectionOnly;
    /// <summary>Override p_filesz of the first load (for filesz &gt; memsz tests).</summary>
    public ulong? FirstFileSizeOverride;

    public byte[] Build()
    {
        byte[]? note = PvhEntry is { } pe ? XenNote(pe) : null;
        bool notePhdr = note != null && !NoteAsSectionOnly;
        int phnum = Loads.Count + (notePhdr ? 1 : 0);
        int phoff = 64;
        int dataOff = phoff + phnum * 56;
        var data = new List<byte>();
        var phdrs = new byte[phnum * 56];
        int idx = 0;
        // An unrelated note first, so the parser must walk past it.
        byte[]? notes = note == null ? null : [.. OtherNote(), .. note];
        int noteOff = 0;
        if (notes != null) { noteOff = dataOff; data.AddRange(notes); while (data.Count % 8 != 0) data.Add(0); }
        foreach (var (paddr, bytes, memsz) in Loads)
        {
            int off = dataOff + data.Count;
            data.AddRange(bytes);
            idx++;
            Le.W32(phdrs, (idx - 1) * 56 + 0, 1);
            Le.W32(phdrs, (idx - 1) * 56 + 4, 7);
            Le.W64(phdrs, (idx - 1) * 56 + 8, (ulong)off);
            Le.W64(phdrs, (idx - 1) * 56 + 16, paddr + 0xffffffff80000000UL);
            Le.W64(phdrs, (idx - 1) * 56 + 24, paddr);
            Le.W64(phdrs, (idx - 1) * 56 + 32, idx == 1 && FirstFileSizeOverride is { } fs ? fs : (ulong)bytes.Length);
            Le.W64(phdrs, (idx - 1) * 56 + 40, memsz);
        }
        if (notePhdr)
        {
            int b = idx * 56;
            Le.W32(phdrs, b, 4);
            Le.W64(phdrs, b + 8, (ulong)noteOff);
            Le.W64(phdrs, b + 32, (ulong)notes!.Length);
        }
        int shoff = 0, shnum = 0;
        byte[] shdrs = [];
        if (notes != null && NoteAsSectionOnly)
        {
            while (data.Count % 8 != 0) data.Add(0);
            shoff = dataOff + data.Count;
            shnum = 2; // null section + note section
            shdrs = new byte[2 * 64];
            Le.W32(shdrs, 64 + 4, 7);
            Le.W64(shdrs, 64 + 24, (ulong)noteOff);
            Le.W64(shdrs, 64 + 32, (ulong)notes.Length);
        }
        var eh = new byte[64];
        eh[0] = 0x7f; eh[1] = (byte)'E'; eh[2] = (byte)'L'; eh[3] = (byte)'F';
        eh[4] = Class; eh[5] = 1; eh[6] = 1;
        Le.W16(eh, 16, Type);
        Le.W16(eh, 18, Machine);
        Le.W32(eh, 20, 1);
        Le.W64(eh, 24, Entry);
        Le.W64(eh, 32, (ulong)phoff);
        Le.W64(eh, 40, (ulong)shoff);
        Le.W16(eh, 52, 64);
        Le.W16(eh, 54, 56);
        Le.W16(eh, 56, (ushort)phnum);
        Le.W16(eh, 58, 64);
        Le.W16(eh, 60, (ushort)shnum);
        return [.. eh, .. phdrs, .. data, .. shdrs];
    }

    private static byte[] XenNote(uint entry)
    {
        var n = new byte[12 + 4 + 4];
        Le.W32(n, 0, 4); Le.W32(n, 4, 4); Le.W32(n, 8, 18);
        "Xen\0"u8.CopyTo(n.AsSpan(12));
        Le.W32(n, 16, entry);
        return n;
    }

    private static byte[] OtherNote()
    {
        // "GNU" build-id style note: namesz 4, descsz 6 (padded to 8), type 3
        var n = new byte[12 + 4 + 8];
        Le.W32(n, 0, 4); Le.W32(n, 4, 6); Le.W32(n, 8, 3);
        "GNU\0"u8.CopyTo(n.AsSpan(12));
        return n;
    }
}
