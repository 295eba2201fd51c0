using System.Buffers.Binary;
using Flint.Memory;
using Microsoft.Win32.SafeHandles;

namespace Flint.Arch.X86;

/// <summary>
/// Loads an x86_64 ELF64 vmlinux: PT_LOAD segments at their physical addresses (p_paddr), bss zeroed.
/// Every header value is checked against the file and guest RAM before anything is written, so a bad
/// image fails with a message instead of scribbling over boot structures or reading past the file.
/// </summary>
internal static class ElfLoader
{
    private const int EhdrSize = 64, PhdrSize = 56, ShdrSize = 64;
    private const byte ElfClass32 = 1, ElfClass64 = 2, ElfData2Lsb = 1;
    private const ushort EtExec = 2, EmX86_64 = 62;
    private const uint PtLoad = 1, PtNote = 4, ShtNote = 7;
    /// <summary>Notes are tiny; cap what we read so a corrupt size cannot make us allocate gigabytes.</summary>
    private const ulong MaxNoteBlock = 1 << 20;

    public static bool HasElfMagic(ReadOnlySpan<byte> head) =>
        head.Length >= 4 && head[0] == 0x7f && head[1] == (byte)'E' && head[2] == (byte)'L' && head[3] == (byte)'F';

    private readonly record struct Segment(uint Type, ulong Offset, ulong Paddr, ulong FileSize, ulong MemSize);

    public static LoadedKernel Load(GuestMemory mem, SafeFileHandle f, long fileLen, string path)
    {
        Span<byte> eh = stackalloc byte[EhdrSize];
        if (fileLen < EhdrSize || !FileIo.TryReadExact(f, eh, 0))
            throw new KernelLoadException(path, $"truncated ELF header ({fileLen} bytes, need {EhdrSize})");
        if (eh[4] == ElfClass32)
            throw new KernelLoadException(path, "32-bit ELF (ELFCLASS32) is not supported: need an x86_64 ELF64 vmlinux");
        if (eh[4] != ElfClass64)
            throw new KernelLoadException(path, $"unknown ELF class {eh[4]}");
        if (eh[5] != ElfData2Lsb)
            throw new KernelLoadException(path, "ELF is not little-endian");
        ushort type = U16(eh, 16), machine = U16(eh, 18);
        if (machine != EmX86_64)
            throw new KernelLoadException(path, $"ELF machine {machine} is not x86_64 (EM_X86_64 = 62)");
        if (type != EtExec)
            throw new KernelLoadException(path, $"ELF type {type} is not an executable (ET_EXEC)");
        ulong entry = U64(eh, 24), phoff = U64(eh, 32), shoff = U64(eh, 40);
        ushort phentsize = U16(eh, 54), phnum = U16(eh, 56), shentsize = U16(eh, 58), shnum = U16(eh, 60);
        if (phnum == 0) throw new KernelLoadException(path, "ELF has no program headers");
        if (phentsize != PhdrSize) throw new KernelLoadException(path, $"ELF program header size {phentsize}, expected {PhdrSize}");
        if (!FitsInFile(phoff, (ulong)phnum * PhdrSize, fileLen))
            throw new KernelLoadException(path, $"truncated: program headers at 0x{phoff:x} ({phnum} x {PhdrSize}) run past the end of the file ({fileLen} bytes)");

        var ph = new byte[phnum * PhdrSize];
        if (!FileIo.TryReadExact(f, ph, (long)phoff)) throw new KernelLoadException(path, "truncated program headers");
        var segs = new Segment[phnum];
        for (int i = 0; i < phnum; i++)
        {
            var p = ph.AsSpan(i * PhdrSize, PhdrSize);
            segs[i] = new Segment(U32(p, 0), U64(p, 8), U64(p, 24), U64(p, 32), U64(p, 40));
        }

        // Validate every PT_LOAD before writing any of them.
        ulong low = ulong.MaxValue, end = 0;
        int loads = 0;
        foreach (var s in segs)
        {
            if (s.Type != PtLoad) continue;
            loads++;
            if (s.FileSize > s.MemSize)
                throw new KernelLoadException(path, $"segment at 0x{s.Paddr:x}: p_filesz 0x{s.FileSize:x} > p_memsz 0x{s.MemSize:x}");
            if (!FitsInFile(s.Offset, s.FileSize, fileLen))
                throw new KernelLoadException(path, $"truncated: segment at 0x{s.Paddr:x} needs file bytes 0x{s.Offset:x}+0x{s.FileSize:x}, file is {fileLen} bytes");
            // Below 1 MiB live the GDT, page tables, zero page, cmdline and MP table.
            if (s.Paddr < Layout.HighMemStart)
                throw new KernelLoadException(path, $"segment at 0x{s.Paddr:x} is below 0x{Layout.HighMemStart:x} (HIMEM_START), where boot structures live");
            if (s.MemSize > 0 && !mem.IsValidRange(s.Paddr, s.MemSize))
                throw new KernelLoadException(path, $"segment 0x{s.Paddr:x}+0x{s.MemSize:x} lies outside guest RAM (guest has {mem.TotalSize >> 20} MiB)");
            low = Math.Min(low, s.Paddr);
            end = Math.Max(end, s.Paddr + s.MemSize);
        }
        if (loads == 0) throw new KernelLoadException(path, "ELF has no PT_LOAD segments");

        uint? pvh = FindPvhEntry(f, fileLen, segs, shoff, shentsize, shnum);
        ulong start = pvh ?? entry;
        if (!mem.IsValidRange(start, 1))
            throw new KernelLoadException(path, $"{(pvh != null ? "PVH" : "ELF")} entry point 0x{start:x} is outside guest RAM");

        foreach (var s in segs)
        {
            if (s.Type != PtLoad || s.MemSize == 0) continue;
            if (!FileIo.TryReadIntoGuest(f, (long)s.Offset, mem, s.Paddr, s.FileSize))
                throw new KernelLoadException(path, $"file ended while reading the segment at 0x{s.Paddr:x}");
            mem.Fill(s.Paddr + s.FileSize, s.MemSize - s.FileSize, 0); // bss
        }

        return pvh != null
            ? new LoadedKernel(KernelKind.Pvh, pvh.Value, low, end)
            : new LoadedKernel(KernelKind.Elf64Linux, entry, low, end);
    }

    /// <summary>PVH entry from PT_NOTE segments, else from SHT_NOTE sections (some linkers drop the note phdr).</summary>
    private static uint? FindPvhEntry(SafeFileHandle f, long fileLen, Segment[] segs, ulong shoff, ushort shentsize, ushort shnum)
    {
        foreach (var s in segs)
        {
            if (s.Type != PtNote) continue;
            if (ReadNotes(f, fileLen, s.Offset, s.FileSize) is { } notes && ElfNotes.FindPvhEntry(notes) is { } e) return e;
        }
        // The section table is optional; a malformed one only means "no note found there".
        if (shoff == 0 || shnum == 0 || shentsize != ShdrSize || !FitsInFile(shoff, (ulong)shnum * ShdrSize, fileLen)) return null;
        var sh = new byte[shnum * ShdrSize];
        if (!FileIo.TryReadExact(f, sh, (long)shoff)) return null;
        for (int i = 0; i < shnum; i++)
        {
            var h = sh.AsSpan(i * ShdrSize, ShdrSize);
            if (U32(h, 4) != ShtNote) continue;
            if (ReadNotes(f, fileLen, U64(h, 24), U64(h, 32)) is { } notes && ElfNotes.FindPvhEntry(notes) is { } e) return e;
        }
        return null;
    }

    private static byte[]? ReadNotes(SafeFileHandle f, long fileLen, ulong offset, ulong size)
    {
        if (size == 0 || size > MaxNoteBlock || !FitsInFile(offset, size, fileLen)) return null;
        var buf = new byte[size];
        return FileIo.TryReadExact(f, buf, (long)offset) ? buf : null;
    }

    private static bool FitsInFile(ulong offset, ulong size, long fileLen) =>
        offset <= (ulong)fileLen && size <= (ulong)fileLen - offset;

    private static ushort U16(ReadOnlySpan<byte> b, int o) => BinaryPrimitives.ReadUInt16LittleEndian(b[o..]);
    private static uint U32(ReadOnlySpan<byte> b, int o) => BinaryPrimitives.ReadUInt32LittleEndian(b[o..]);
    private static ulong U64(ReadOnlySpan<byte> b, int o) => BinaryPrimitives.ReadUInt64LittleEndian(b[o..]);
}
