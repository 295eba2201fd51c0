using System.Buffers.Binary;

namespace Flint.Arch.X86;

/// <summary>
/// Finds the PVH entry in ELF notes. Linux advertises it with ELFNOTE(Xen, XEN_ELFNOTE_PHYS32_ENTRY, .long entry):
/// an Elf64_Nhdr {namesz, descsz, type} followed by "Xen\0" and a 32-bit physical entry address, each padded to 4.
/// </summary>
internal static class ElfNotes
{
    /// <summary>XEN_ELFNOTE_PHYS32_ENTRY from xen/include/public/elfnote.h.</summary>
    public const uint XenElfNotePhys32Entry = 18;

    /// <summary>The PHYS32 entry address in a block of notes, or null.</summary>
    public static uint? FindPvhEntry(ReadOnlySpan<byte> notes)
    {
        int pos = 0;
        while (notes.Length - pos >= 12)
        {
            uint namesz = BinaryPrimitives.ReadUInt32LittleEndian(notes[pos..]);
            uint descsz = BinaryPrimitives.ReadUInt32LittleEndian(notes[(pos + 4)..]);
            uint type = BinaryPrimitives.ReadUInt32LittleEndian(notes[(pos + 8)..]);
            long nameOff = pos + 12;
            long descOff = nameOff + Align4(namesz);
            long next = descOff + Align4(descsz);
            if (next > notes.Length) break; // malformed or truncated note: stop, never read past the block
            if (type == XenElfNotePhys32Entry && descsz >= 4 && IsXen(notes.Slice((int)nameOff, (int)namesz)))
                return BinaryPrimitives.ReadUInt32LittleEndian(notes[(int)descOff..]);
            pos = (int)next;
        }
        return null;
    }

    private static long Align4(uint v) => ((long)v + 3) & ~3L;

    // The name is "Xen" with its NUL (namesz 4); tolerate a producer that left the NUL out.
    private static bool IsXen(ReadOnlySpan<byte> name) =>
        (name.Length == 4 && name[3] == 0 || name.Length == 3) && name[0] == (byte)'X' && name[1] == (byte)'e' && name[2] == (byte)'n';
}
