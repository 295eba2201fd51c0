using Flint.Memory;

namespace Flint.Arch.X86;

/// <summary>
/// Places the initrd page-aligned at the top of low RAM, as boot loaders traditionally do: the kernel
/// decompresses and grows upward from its load address, so the far end of low RAM is the place least
/// likely to be in its way. Low RAM ends at min(mem, 3 GiB), below the MMIO gap, and fits the zero
/// page's 32-bit ramdisk_image field.
/// </summary>
public static class InitrdLoader
{
    public static (ulong Address, ulong Size) Load(GuestMemory mem, string path, ulong kernelEnd)
    {
        ArgumentNullException.ThrowIfNull(mem);
        Microsoft.Win32.SafeHandles.SafeFileHandle f;
        try { f = File.OpenHandle(path, FileMode.Open, FileAccess.Read); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new InitrdLoadException(path, $"cannot open: {e.Message}");
        }
        using (f)
        {
            ulong size = (ulong)RandomAccess.GetLength(f);
            if (size == 0) throw new InitrdLoadException(path, "file is empty");

            var low = mem.FindRegion(0) ?? throw new InitrdLoadException(path, "guest has no RAM at address 0");
            ulong lowEnd = Math.Min(low.GuestEnd, Layout.MmioGapStart);
            ulong floor = Math.Max(AlignUp(kernelEnd), Layout.HighMemStart);
            if (size > lowEnd)
                throw new InitrdLoadException(path, $"{size} bytes do not fit in {lowEnd >> 20} MiB of low RAM");
            ulong addr = (lowEnd - size) & ~(MemoryLayout.PageSize - 1);
            if (addr < floor)
                throw new InitrdLoadException(path,
                    $"{size} bytes do not fit in low RAM between the kernel (ends 0x{kernelEnd:x}) and 0x{lowEnd:x}; give the guest more memory");
            if (!FileIo.TryReadIntoGuest(f, 0, mem, addr, size))
                throw new InitrdLoadException(path, "file shrank while it was being read");
            return (addr, size);
        }
    }

    private static ulong AlignUp(ulong v) => (v + MemoryLayout.PageSize - 1) & ~(MemoryLayout.PageSize - 1);
}
