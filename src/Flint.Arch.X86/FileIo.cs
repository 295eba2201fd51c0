using Flint.Memory;
using Microsoft.Win32.SafeHandles;

namespace Flint.Arch.X86;

/// <summary>Positional reads that either fill the whole buffer or fail: image files are read, never streamed.</summary>
// SAFETY: file data is read into guest memory through GetHostPointer, which checks that [gpa, gpa+len) lies in one region.
internal static unsafe class FileIo
{
    /// <summary>Reads exactly dst.Length bytes at <paramref name="offset"/>; false when the file ends first.</summary>
    public static bool TryReadExact(SafeFileHandle f, Span<byte> dst, long offset)
    {
        while (dst.Length > 0)
        {
            int n = RandomAccess.Read(f, dst, offset);
            if (n <= 0) return false;
            dst = dst[n..];
            offset += n;
        }
        return true;
    }

    /// <summary>
    /// Reads <paramref name="len"/> file bytes at <paramref name="offset"/> straight into guest memory at
    /// <paramref name="gpa"/> (no intermediate copy: kernels and initrds can be tens of MiB). The guest range
    /// must lie in one RAM region; chunks keep each span under int.MaxValue.
    /// </summary>
    public static bool TryReadIntoGuest(SafeFileHandle f, long offset, GuestMemory mem, ulong gpa, ulong len)
    {
        byte* p = mem.GetHostPointer(gpa, len);
        mem.MarkDirty(gpa, len); // the kernel and initrd belong in a booted VM's first Diff snapshot
        const ulong Chunk = 1UL << 30;
        while (len > 0)
        {
            int n = (int)Math.Min(len, Chunk);
            if (!TryReadExact(f, new Span<byte>(p, n), offset)) return false;
            p += n;
            offset += n;
            len -= (ulong)n;
        }
        return true;
    }
}
