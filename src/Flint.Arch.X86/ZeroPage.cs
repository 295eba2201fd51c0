using Flint.Memory;

namespace Flint.Arch.X86;

/// <summary>
/// The Linux zero page (struct boot_params, Documentation/arch/x86/zero-page.rst) and the setup header inside
/// it (boot.rst). Offsets are absolute within boot_params; the page is rebuilt from zero on every boot.
/// </summary>
public static class ZeroPage
{
    public const int Size = 4096;

    // boot_params
    /// <summary>u64 acpi_rsdp_addr: where the RSDP is, so the kernel need not scan for it (Firecracker sets it).</summary>
    public const int AcpiRsdpAddrOffset = 0x070;
    public const int E820EntriesOffset = 0x1e8;   // u8 count
    public const int E820TableOffset = 0x2d0;     // struct boot_e820_entry[128]
    public const int E820EntrySize = 20;          // u64 addr, u64 size, u32 type (packed)
    public const int E820MaxEntries = 128;

    // setup_header
    public const int SetupHeaderOffset = 0x1f1;   // setup_sects
    public const int SetupHeaderMaxEnd = 0x290;   // edd_mbr_sig_buffer starts here
    public const int BootFlagOffset = 0x1fe;      // u16 0xAA55
    public const int HeaderMagicOffset = 0x202;   // "HdrS"
    public const int VersionOffset = 0x206;
    public const int TypeOfLoaderOffset = 0x210;
    public const int LoadflagsOffset = 0x211;
    public const int Code32StartOffset = 0x214;
    public const int RamdiskImageOffset = 0x218;
    public const int RamdiskSizeOffset = 0x21c;
    public const int HeapEndPtrOffset = 0x224;
    public const int CmdLinePtrOffset = 0x228;
    public const int KernelAlignmentOffset = 0x230;
    public const int XloadflagsOffset = 0x236;
    public const int CmdlineSizeOffset = 0x238;
    public const int PrefAddressOffset = 0x258;
    public const int InitSizeOffset = 0x260;

    public const ushort BootFlag = 0xAA55;
    public const uint HdrSMagic = 0x5372_6448;    // "HdrS" little-endian
    /// <summary>0xff: "undefined" boot loader; we have no registered id.</summary>
    public const byte LoaderTypeUndefined = 0xff;
    public const byte LoadedHigh = 0x01;          // protected-mode code loaded at 0x100000
    public const byte CanUseHeap = 0x80;          // heap_end_ptr is valid
    public const ushort XlfKernel64 = 0x0001;     // has the 64-bit entry at +0x200
    /// <summary>Firecracker's value for ELF kernels (no header of their own): 16 MiB, the x86_64 default.</summary>
    public const uint DefaultKernelAlignment = 0x100_0000;
    /// <summary>boot.rst: end of setup heap (offset from the real-mode code) minus 0x200; meaningful only to the
    /// 16-bit setup code we skip, set so the header describes a consistent load.</summary>
    public const ushort HeapEndPtr = 0xfe00 - 0x200;

    /// <summary>
    /// Builds the zero page at <see cref="Layout.ZeroPageStart"/>. For a bzImage the kernel's own setup header
    /// is copied first (boot.rst: fill the header "as if loaded by the 16-bit protocol"), then the loader fields
    /// are overwritten. KEEP_SEGMENTS is not set: it only ever affected the 32-bit entry and Linux 5.9+ ignores it.
    /// </summary>
    public static void Write(GuestMemory mem, LoadedKernel kernel, ulong cmdlineAddr, int cmdlineLen,
        (ulong Address, ulong Size)? initrd, ulong memBytes)
    {
        const ulong zp = Layout.ZeroPageStart;
        Span<byte> page = new byte[Size];
        if (kernel.SetupHeader is { } hdr)
        {
            if (hdr.Length > SetupHeaderMaxEnd - SetupHeaderOffset) throw new ArgumentException("setup header too long");
            hdr.CopyTo(page[SetupHeaderOffset..]);
            Put32(page, Code32StartOffset, (uint)kernel.LoadAddress);
        }
        else
        {
            PutU16(page, BootFlagOffset, BootFlag);
            Put32(page, HeaderMagicOffset, HdrSMagic);
            Put32(page, KernelAlignmentOffset, DefaultKernelAlignment);
        }
        page[TypeOfLoaderOffset] = LoaderTypeUndefined;
        page[LoadflagsOffset] |= LoadedHigh | CanUseHeap;
        PutU16(page, HeapEndPtrOffset, HeapEndPtr);
        Put32(page, CmdLinePtrOffset, checked((uint)cmdlineAddr));
        Put32(page, CmdlineSizeOffset, (uint)cmdlineLen + 1); // bytes including the NUL, as Firecracker writes it
        if (initrd is { } rd)
        {
            Put32(page, RamdiskImageOffset, checked((uint)rd.Address));
            Put32(page, RamdiskSizeOffset, checked((uint)rd.Size));
        }

        Put64(page, AcpiRsdpAddrOffset, Layout.RsdpAddress);

        var map = E820.Build(memBytes);
        if (map.Length > E820MaxEntries) throw new InvalidOperationException("too many e820 entries");
        page[E820EntriesOffset] = (byte)map.Length;
        for (int i = 0; i < map.Length; i++)
        {
            var e = page[(E820TableOffset + i * E820EntrySize)..];
            Put64(e, 0, map[i].Address);
            Put64(e, 8, map[i].Size);
            Put32(e, 16, map[i].Type);
        }
        mem.Write(zp, page);
    }

    private static void PutU16(Span<byte> b, int o, ushort v) => System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(b[o..], v);
    private static void Put32(Span<byte> b, int o, uint v) => System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(b[o..], v);
    private static void Put64(Span<byte> b, int o, ulong v) => System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(b[o..], v);
}
