using System.Runtime.InteropServices;

namespace Flint.Sys;

/// <summary>An ELF64 program header (Elf64_Phdr), as the kernel passes the executable's in the auxiliary vector.</summary>
[StructLayout(LayoutKind.Sequential)]
public readonly struct ProgramHeader
{
    public const uint PT_LOAD = 1, PT_PHDR = 6, PT_GNU_RELRO = 0x6474e552;
    public const uint PF_X = 1, PF_W = 2, PF_R = 4;

    public readonly uint Type;
    public readonly uint Flags;
    public readonly ulong Offset;
    public readonly ulong VirtualAddress;
    public readonly ulong PhysicalAddress;
    public readonly ulong FileSize;
    public readonly ulong MemorySize;
    public readonly ulong Align;

    public ProgramHeader(uint type, uint flags, ulong offset, ulong vaddr, ulong fileSize, ulong memSize)
    {
        Type = type; Flags = flags; Offset = offset; VirtualAddress = vaddr; PhysicalAddress = vaddr;
        FileSize = fileSize; MemorySize = memSize; Align = 0x1000;
    }
}
