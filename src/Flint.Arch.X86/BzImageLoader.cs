using System.Buffers.Binary;
using Flint.Memory;
using Microsoft.Win32.SafeHandles;

namespace Flint.Arch.X86;

/// <summary>
/// Loads a bzImage per Documentation/arch/x86/boot.rst: the real-mode setup (setup_sects + 1 sectors) is
/// skipped, the protected-mode kernel goes to 0x100000, and the 64-bit entry is at load address + 0x200.
/// The setup header is kept so the zero page can be built "as if loaded by the 16-bit protocol".
/// </summary>
internal static class BzImageLoader
{
    /// <summary>Protocol 2.12 added xloadflags (XLF_KERNEL_64) and the 64-bit entry contract we rely on.</summary>
    public const ushort MinProtocol = 0x020c;
    private const int HeadSize = 0x400;

    public static bool HasHdrS(ReadOnlySpan<byte> head) =>
        head.Length >= ZeroPage.HeaderMagicOffset + 4 &&
        BinaryPrimitives.ReadUInt32LittleEndian(head[ZeroPage.HeaderMagicOffset..]) == ZeroPage.HdrSMagic;

    public static LoadedKernel Load(GuestMemory mem, SafeFileHandle f, long fileLen, ReadOnlySpan<byte> head, string path)
    {
        if (head.Length < HeadSize)
            throw new KernelLoadException(path, $"truncated bzImage: {fileLen} bytes is shorter than its setup header area");
        ushort version = U16(head, ZeroPage.VersionOffset);
        if (version < MinProtocol)
            throw new KernelLoadException(path,
                $"bzImage boot protocol {version >> 8}.{version & 0xff:d2} is too old: need {MinProtocol >> 8}.{MinProtocol & 0xff:d2} or newer (64-bit entry)");
        if ((head[ZeroPage.LoadflagsOffset] & ZeroPage.LoadedHigh) == 0)
            throw new KernelLoadException(path, "zImage (LOADED_HIGH not set) is not supported: need a bzImage");
        if ((U16(head, ZeroPage.XloadflagsOffset) & ZeroPage.XlfKernel64) == 0)
            throw new KernelLoadException(path, "bzImage has no 64-bit entry point (XLF_KERNEL_64 not set in xloadflags)");

        // The setup header runs from 0x1f1 to 0x202 + the short jump's displacement byte at 0x201.
        int headerEnd = ZeroPage.HeaderMagicOffset + head[0x201];
        if (headerEnd <= ZeroPage.HeaderMagicOffset + 4 || headerEnd > ZeroPage.SetupHeaderMaxEnd)
            throw new KernelLoadException(path, $"bzImage setup header length is invalid (ends at 0x{headerEnd:x})");
        byte[] setupHeader = head[ZeroPage.SetupHeaderOffset..headerEnd].ToArray();

        int setupSects = head[ZeroPage.SetupHeaderOffset];
        if (setupSects == 0) setupSects = 4; // boot.rst: "if this field is 0, the real value is 4"
        long pmOffset = (setupSects + 1) * 512L;
        if (fileLen <= pmOffset)
            throw new KernelLoadException(path, $"truncated bzImage: no protected-mode kernel after {setupSects} setup sectors ({fileLen} bytes)");
        ulong pmSize = (ulong)(fileLen - pmOffset);

        const ulong load = Layout.HighMemStart; // code32_start default; we tell the kernel in the zero page too
        if (!mem.IsValidRange(load, pmSize))
            throw new KernelLoadException(path, $"kernel ({pmSize} bytes) does not fit in guest RAM at 0x{load:x}");

        // The decompressor runs at max(align_up(load, kernel_alignment), pref_address) and needs init_size
        // bytes there before it has looked at the memory map: the initrd must stay clear of all of that.
        uint kalign = U32(head, ZeroPage.KernelAlignmentOffset);
        ulong runStart = kalign != 0 && (kalign & (kalign - 1)) == 0 ? (load + kalign - 1) & ~((ulong)kalign - 1) : load;
        runStart = Math.Max(runStart, U64(head, ZeroPage.PrefAddressOffset));
        ulong end = Math.Max(load + pmSize, runStart + U32(head, ZeroPage.InitSizeOffset));
        if (!mem.IsValidRange(load, end - load))
            throw new KernelLoadException(path, $"guest RAM too small: the kernel needs memory up to 0x{end:x} to decompress");

        if (!FileIo.TryReadIntoGuest(f, pmOffset, mem, load, pmSize))
            throw new KernelLoadException(path, "file ended while reading the protected-mode kernel");
        return new LoadedKernel(KernelKind.BzImage, load + 0x200, load, end, setupHeader);
    }

    private static ushort U16(ReadOnlySpan<byte> b, int o) => BinaryPrimitives.ReadUInt16LittleEndian(b[o..]);
    private static uint U32(ReadOnlySpan<byte> b, int o) => BinaryPrimitives.ReadUInt32LittleEndian(b[o..]);
    private static ulong U64(ReadOnlySpan<byte> b, int o) => BinaryPrimitives.ReadUInt64LittleEndian(b[o..]);
}
