using Flint.Memory;

namespace Flint.Arch.X86;

/// <summary>Loads a kernel image into guest memory, telling ELF vmlinux (PVH or 64-bit entry) from bzImage by content.</summary>
public static class KernelLoader
{
    public static LoadedKernel Load(GuestMemory mem, string path)
    {
        ArgumentNullException.ThrowIfNull(mem);
        Microsoft.Win32.SafeHandles.SafeFileHandle f;
        try { f = File.OpenHandle(path, FileMode.Open, FileAccess.Read); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new KernelLoadException(path, $"cannot open: {e.Message}");
        }
        using (f)
        {
            long len = RandomAccess.GetLength(f);
            Span<byte> head = new byte[(int)Math.Min(len, 0x400)];
            FileIo.TryReadExact(f, head, 0);
            if (ElfLoader.HasElfMagic(head)) return ElfLoader.Load(mem, f, len, path);
            if (BzImageLoader.HasHdrS(head)) return BzImageLoader.Load(mem, f, len, head, path);
            if (len < ZeroPage.HeaderMagicOffset + 4)
                throw new KernelLoadException(path, $"file too small ({len} bytes) to be a kernel image");
            throw new KernelLoadException(path, "not a kernel image: neither an ELF vmlinux (no \\x7fELF magic) nor a bzImage (no 'HdrS' at 0x202)");
        }
    }
}
