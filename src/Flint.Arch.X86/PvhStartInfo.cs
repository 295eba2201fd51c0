using System.Buffers.Binary;
using Flint.Memory;

namespace Flint.Arch.X86;

/// <summary>
/// PVH boot data (xen/include/public/arch-x86/hvm/start_info.h, version 1): hvm_start_info at
/// <see cref="Layout.PvhInfoStart"/>, its memory map right after it, then the module list (the initrd).
/// All of it fits in the page below the zero page.
/// </summary>
public static class PvhStartInfo
{
    public const uint Magic = 0x336e_c578;          // XEN_HVM_START_MAGIC_VALUE
    public const uint Version = 1;                  // version 1 added memmap_paddr/memmap_entries
    public const int StartInfoSize = 56;
    public const int MemmapEntrySize = 24;          // u64 addr, u64 size, u32 type, u32 reserved
    public const int ModlistEntrySize = 32;         // u64 paddr, u64 size, u64 cmdline_paddr, u64 reserved

    // hvm_start_info field offsets
    public const int MagicOffset = 0, VersionOffset = 4, FlagsOffset = 8, NrModulesOffset = 12;
    public const int ModlistPaddrOffset = 16, CmdlinePaddrOffset = 24, RsdpPaddrOffset = 32;
    public const int MemmapPaddrOffset = 40, MemmapEntriesOffset = 48;

    public const ulong MemmapAddress = Layout.PvhInfoStart + StartInfoSize;

    /// <summary>Writes start_info, memmap and (with an initrd) one module entry; returns the start_info address for ebx.</summary>
    public static ulong Write(GuestMemory mem, ulong cmdlineAddr, (ulong Address, ulong Size)? initrd, ulong memBytes)
    {
        var map = E820.Build(memBytes);
        int memmapBytes = map.Length * MemmapEntrySize;
        ulong modlistAddr = (MemmapAddress + (ulong)memmapBytes + 7) & ~7UL;
        int total = (int)(modlistAddr - Layout.PvhInfoStart) + (initrd != null ? ModlistEntrySize : 0);
        if (Layout.PvhInfoStart + (ulong)total > Layout.ZeroPageStart)
            throw new InvalidOperationException("PVH start_info does not fit below the zero page");

        Span<byte> buf = new byte[total];
        Put32(buf, MagicOffset, Magic);
        Put32(buf, VersionOffset, Version);
        Put64(buf, CmdlinePaddrOffset, cmdlineAddr);
        Put64(buf, RsdpPaddrOffset, Layout.RsdpAddress); // the builder always writes the ACPI tables (AcpiTableWriter)
        Put64(buf, MemmapPaddrOffset, MemmapAddress);
        Put32(buf, MemmapEntriesOffset, (uint)map.Length);
        for (int i = 0; i < map.Length; i++)
        {
            var e = buf[(StartInfoSize + i * MemmapEntrySize)..];
            Put64(e, 0, map[i].Address);
            Put64(e, 8, map[i].Size);
            Put32(e, 16, map[i].Type);
        }
        if (initrd is { } rd)
        {
            Put32(buf, NrModulesOffset, 1);
            Put64(buf, ModlistPaddrOffset, modlistAddr);
            var m = buf[(int)(modlistAddr - Layout.PvhInfoStart)..];
            Put64(m, 0, rd.Address);
            Put64(m, 8, rd.Size);
        }
        mem.Write(Layout.PvhInfoStart, buf);
        return Layout.PvhInfoStart;
    }

    private static void Put32(Span<byte> b, int o, uint v) => BinaryPrimitives.WriteUInt32LittleEndian(b[o..], v);
    private static void Put64(Span<byte> b, int o, ulong v) => BinaryPrimitives.WriteUInt64LittleEndian(b[o..], v);
}
