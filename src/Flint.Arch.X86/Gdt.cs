using Flint.Kvm;
using Flint.Memory;

namespace Flint.Arch.X86;

/// <summary>
/// The boot GDT. KVM loads segment state from kvm_segment (hidden descriptor caches), not from memory, but
/// the table is also written at <see cref="Layout.GdtStart"/> so the descriptors match what a reload of the
/// same selectors would produce until the kernel installs its own GDT.
/// Flags are 16 bits: low byte = access byte (P, DPL, S, type); high nibble = G, D/B, L, AVL.
/// </summary>
public static class Gdt
{
    public const ushort CodeSelector = 0x08, DataSelector = 0x10, TssSelector = 0x18;
    public const int Entries = 4;

    public const ushort Code64Flags = 0xa09b;  // G, L; present, ring 0, code exec/read, accessed
    public const ushort Code32Flags = 0xc09b;  // G, D (32-bit); present, ring 0, code exec/read, accessed
    public const ushort DataFlags = 0xc093;    // G, B; present, ring 0, data read/write, accessed
    public const ushort TssFlags = 0x808b;     // G; present, system, busy TSS

    /// <summary>Long-mode table: [0] null, [1] 64-bit code, [2] data, [3] TSS; flat 4 GiB limits.</summary>
    public static ulong[] LongModeTable() =>
        [0, Entry(Code64Flags, 0, 0xfffff), Entry(DataFlags, 0, 0xfffff), Entry(TssFlags, 0, 0xfffff)];

    /// <summary>
    /// PVH table: 32-bit flat code (D=1, L=0) and data; the PVH spec asks for a 32-bit busy TSS with base 0 and
    /// limit 0x67 in TR.
    /// </summary>
    public static ulong[] PvhTable() =>
        [0, Entry(Code32Flags, 0, 0xfffff), Entry(DataFlags, 0, 0xfffff), Entry(0x008b, 0, 0x67)];

    public static ulong[] TableFor(KernelKind kind) => kind == KernelKind.Pvh ? PvhTable() : LongModeTable();

    /// <summary>Encodes a segment descriptor from flags, a 32-bit base and a 20-bit limit.</summary>
    public static ulong Entry(ushort flags, uint @base, uint limit) =>
        (((ulong)@base & 0xff00_0000) << 32) | (((ulong)flags & 0xf0ff) << 40) | (((ulong)limit & 0xf_0000) << 32)
        | (((ulong)@base & 0x00ff_ffff) << 16) | ((ulong)limit & 0xffff);

    /// <summary>The kvm_segment a load of <paramref name="selector"/> would produce from <paramref name="entry"/>.</summary>
    public static KvmSegment ToSegment(ulong entry, ushort selector)
    {
        byte access = (byte)(entry >> 40);
        byte flags = (byte)((entry >> 52) & 0xf);
        uint limit = (uint)((entry & 0xffff) | ((entry >> 32) & 0xf_0000));
        byte g = (byte)((flags >> 3) & 1);
        byte present = (byte)(access >> 7);
        return new KvmSegment
        {
            Base = ((entry >> 16) & 0xff_ffff) | ((entry >> 32) & 0xff00_0000),
            Limit = g != 0 ? (limit << 12) | 0xfff : limit,
            Selector = selector,
            Type = (byte)(access & 0xf),
            S = (byte)((access >> 4) & 1),
            Dpl = (byte)((access >> 5) & 3),
            Present = present,
            Avl = (byte)(flags & 1),
            L = (byte)((flags >> 1) & 1),
            Db = (byte)((flags >> 2) & 1),
            G = g,
            Unusable = (byte)(present == 0 ? 1 : 0),
        };
    }

    /// <summary>Writes the table at <see cref="Layout.GdtStart"/> (32 bytes, ending where the IDT starts).</summary>
    public static void Write(GuestMemory mem, ReadOnlySpan<ulong> table)
    {
        if ((ulong)table.Length * 8 > Layout.IdtStart - Layout.GdtStart)
            throw new ArgumentException("GDT would overlap the IDT");
        for (int i = 0; i < table.Length; i++) mem.Write(Layout.GdtStart + (ulong)i * 8, table[i]);
    }
}
