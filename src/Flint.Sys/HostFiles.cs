using System.Runtime.InteropServices;

namespace Flint.Sys;

/// <summary>
/// The two file calls .NET lacks, for flint-pool: chown (a slot's writable files belong to its uid) and link (every
/// slot's jail gets the function's kernel and snapshot files as hard links, so clones share one page cache).
/// </summary>
// SAFETY: syscalls get pinned strings (NUL-terminated) and stack buffers with their sizes.
public static unsafe class HostFiles
{
    // chown is JailerLibc's (each libc function is declared once: InteropLayerTests).
    [DllImport("libc", SetLastError = true)] private static extern int link(byte* oldPath, byte* newPath);

    public const int EXDEV = 18;

    public static void Chown(string path, uint uid, uint gid)
    {
        Span<byte> p = stackalloc byte[MaxPath];
        Z(path, p);
        // SAFETY: p is a NUL-terminated copy of path on the stack, pinned for the call.
        fixed (byte* pp = p)
        {
            if (JailerLibc.chown(pp, uid, gid) != 0)
                throw new IOException($"chown {path} to {uid}:{gid} failed (errno {Marshal.GetLastPInvokeError()})");
        }
    }

    /// <summary>Creates <paramref name="newPath"/> as a hard link; returns the errno on failure (EXDEV: other filesystem).</summary>
    public static int TryLink(string oldPath, string newPath)
    {
        Span<byte> a = stackalloc byte[MaxPath];
        Span<byte> b = stackalloc byte[MaxPath];
        Z(oldPath, a);
        Z(newPath, b);
        // SAFETY: a and b are NUL-terminated copies on the stack, pinned for the call.
        fixed (byte* pa = a, pb = b)
            return link(pa, pb) == 0 ? 0 : Marshal.GetLastPInvokeError();
    }

    private const int MaxPath = 4096;

    private static void Z(string s, Span<byte> dst)
    {
        int n = System.Text.Encoding.UTF8.GetByteCount(s);
        if (n >= MaxPath) throw new PathTooLongException($"path over {MaxPath - 1} bytes: {s[..64]}...");
        System.Text.Encoding.UTF8.GetBytes(s, dst);
        dst[n] = 0;
    }
}
