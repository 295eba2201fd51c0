using Flint.Sys;

namespace Flint.Memory;

/// <summary>What a virtio-pmem device needs from its backing: how much of the window is the file, and a flush.</summary>
public interface IPmemBacking
{
    /// <summary>Bytes of the backing file (the part of the window a flush persists).</summary>
    ulong FileLength { get; }

    /// <summary>msync(MS_SYNC) over the file's part of the window: 0 on success, the errno otherwise. Never throws.</summary>
    int Flush();
}

/// <summary>
/// A virtio-pmem backing file mapped for the guest (Firecracker's PmemMmap): the window is the file's size rounded up
/// to <see cref="Alignment"/> (the guest's pmem driver needs a 2 MiB aligned region), the file mapped MAP_SHARED at
/// its start (read-only when the device is) and the rest of the window anonymous private memory. Writes into that
/// padding never reach the file (docs/pmem.md warns users). The fd is closed once the mapping exists: the mapping keeps
/// the file.
/// </summary>
// SAFETY: the window is one mapping of WindowLength bytes (file + anonymous padding), unmapped once in Dispose; offsets are checked against it.
public sealed unsafe class PmemMapping : IPmemBacking, IDisposable
{
    /// <summary>Firecracker's Pmem::ALIGNMENT.</summary>
    public const ulong Alignment = 2UL << 20;

    private byte* _host;

    private PmemMapping(byte* host, ulong fileLength, ulong windowLength, bool readOnly)
    {
        _host = host;
        FileLength = fileLength;
        WindowLength = windowLength;
        ReadOnly = readOnly;
    }

    public ulong FileLength { get; }

    /// <summary>The guest-visible size: <see cref="FileLength"/> rounded up to 2 MiB.</summary>
    public ulong WindowLength { get; }

    public bool ReadOnly { get; }

    /// <summary>Host address of the window (for the KVM memory slot).</summary>
    public nint Host => (nint)_host;

    /// <summary>
    /// Opens and maps <paramref name="path"/>. Throws <see cref="SysException"/> (open, lseek, mmap) with the OS's errno,
    /// or <see cref="PmemBackingEmptyException"/> for an empty file.
    /// </summary>
    public static PmemMapping Open(string path, bool readOnly)
    {
        int fd = Libc.Open(path, readOnly ? Libc.O_RDONLY : Libc.O_RDWR);
        if (fd < 0) throw SysException.Last($"open {path}");
        try
        {
            long len = Libc.lseek(fd, 0, Libc.SEEK_END);
            if (len < 0) throw SysException.Last($"lseek {path}");
            if (len == 0) throw new PmemBackingEmptyException();
            ulong fileLength = (ulong)len;
            ulong window = WindowFor(fileLength);
            int prot = readOnly ? Libc.PROT_READ : Libc.PROT_READ | Libc.PROT_WRITE;
            byte* host;
            if (window == fileLength)
            {
                // SAFETY: a new shared mapping of the whole file; this object owns it and unmaps it on Dispose.
                host = (byte*)Libc.mmap(null, (nuint)fileLength, prot, Libc.MAP_SHARED | Libc.MAP_NORESERVE, fd, 0);
                if ((nint)host == Libc.MAP_FAILED) throw SysException.Last($"mmap {path}");
            }
            else
            {
                // SAFETY: reserve the whole window as anonymous memory first, then place the file over its start with
                // MAP_FIXED inside that reservation (never over anything else); Dispose unmaps the whole window.
                host = (byte*)Libc.mmap(null, (nuint)window, prot, Libc.MAP_PRIVATE | Libc.MAP_NORESERVE | Libc.MAP_ANONYMOUS, -1, 0);
                if ((nint)host == Libc.MAP_FAILED) throw SysException.Last($"mmap {path} window");
                void* file = Libc.mmap(host, (nuint)fileLength, prot, Libc.MAP_SHARED | Libc.MAP_NORESERVE | Libc.MAP_FIXED, fd, 0);
                if ((nint)file == Libc.MAP_FAILED)
                {
                    var e = SysException.Last($"mmap {path}");
                    Libc.munmap(host, (nuint)window);
                    throw e;
                }
            }
            return new PmemMapping(host, fileLength, window, readOnly);
        }
        finally
        {
            Libc.close(fd);
        }
    }

    /// <summary>The window a file of <paramref name="fileLength"/> bytes gets (Firecracker's align_up to 2 MiB).</summary>
    public static ulong WindowFor(ulong fileLength) => checked(fileLength + Alignment - 1) & ~(Alignment - 1);

    public int Flush()
    {
        var host = _host;
        if (host == null) return Libc.EBADF;
        // SAFETY: the file part of a mapping this object owns and has not unmapped.
        return Libc.msync(host, (nuint)FileLength, Libc.MS_SYNC) == 0 ? 0 : Libc.Errno;
    }

    /// <summary>Copies window bytes at <paramref name="offset"/> into <paramref name="data"/>; what lies past the window
    /// (or a disposed mapping) reads as all-ones, like an empty bus.</summary>
    public void Read(ulong offset, Span<byte> data)
    {
        var host = _host;
        data.Fill(0xff);
        if (host == null || offset >= WindowLength) return;
        ulong n = Math.Min((ulong)data.Length, WindowLength - offset);
        // SAFETY: [offset, offset+n) lies inside the window this object maps (checked just above).
        new ReadOnlySpan<byte>(host + offset, (int)n).CopyTo(data);
    }

    /// <summary>Writes <paramref name="data"/> at <paramref name="offset"/> (tests: what a guest store does); false
    /// when read-only or out of the window.</summary>
    public bool Write(ulong offset, ReadOnlySpan<byte> data)
    {
        var host = _host;
        if (host == null || ReadOnly || offset >= WindowLength || (ulong)data.Length > WindowLength - offset) return false;
        // SAFETY: [offset, offset+len) lies inside the writable window this object maps (checked just above).
        data.CopyTo(new Span<byte>(host + offset, data.Length));
        return true;
    }

    public void Dispose()
    {
        var host = _host;
        _host = null;
        // SAFETY: unmaps the window this object mapped, once.
        if (host != null) Libc.munmap(host, (nuint)WindowLength);
    }
}

/// <summary>Firecracker's PmemError::BackingFileZeroSize.</summary>
public sealed class PmemBackingEmptyException() : Exception("Error backing file size is 0");
