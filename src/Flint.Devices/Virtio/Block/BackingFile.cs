using Flint.Sys;

namespace Flint.Devices.Virtio.Block;

/// <summary>
/// An open disk image: fd, size in sectors, serial. Immutable once opened, so a drive update swaps the whole
/// object and readers of the old one (a vCPU reading capacity) never see a half-updated pair.
/// I/O goes straight between the fd and a host pointer into guest memory: no staging buffer.
/// </summary>
// SAFETY: pread/pwrite/fsync get host pointers of validated guest buffers with their exact lengths.
internal sealed unsafe class BackingFile : IDisposable
{
    private const int SeekEnd = 2;
    private int _fd;

    private BackingFile(string path, int fd, ulong capacitySectors, byte[] serial)
    {
        Path = path;
        _fd = fd;
        CapacitySectors = capacitySectors;
        Serial = serial;
    }

    public string Path { get; }

    /// <summary>The open file, for the Async engine to register with its io_uring.</summary>
    public int Fd => _fd;
    public ulong CapacitySectors { get; }

    /// <summary>The GET_ID answer: 20 bytes, zero-padded.</summary>
    public byte[] Serial { get; }

    /// <summary>Opens <paramref name="path"/> read-write, or read-only so a read-only drive cannot be written even by a bug here.</summary>
    public static BackingFile Open(string path, bool readOnly, string? serial)
    {
        int fd = Libc.Open(path, readOnly ? Libc.O_RDONLY : Libc.O_RDWR);
        // open(O_RDWR) of a directory fails with EISDIR: the same words as the read-only case below.
        if (fd < 0 && Libc.Errno == Libc.EISDIR) throw IsDirectory(path);
        if (fd < 0) throw SysException.Last($"open {path}");
        try
        {
            // open(O_RDONLY) succeeds on a directory; a read-only "disk" that is one must be refused here, in words.
            // Asked of the open fd (a read answers EISDIR), not with stat(2) on the path: this also runs on the VMM
            // thread after the start (a hot-plugged or patched drive), whose seccomp filter has no stat.
            byte probe;
            if (Libc.pread(fd, &probe, 1, 0) < 0 && Libc.Errno == Libc.EISDIR) throw IsDirectory(path);
            long size = Libc.lseek(fd, 0, SeekEnd);
            if (size < 0) throw SysException.Last($"lseek {path}");
            // A trailing partial sector cannot be addressed by the guest, so it is not part of the disk.
            return new BackingFile(path, fd, (ulong)size >> VirtioBlockConstants.SectorShift, MakeSerial(fd, serial));
        }
        catch
        {
            Libc.close(fd);
            throw;
        }
    }

    private static SysException IsDirectory(string path) =>
        new($"open {path}", Libc.EISDIR, $"{path} is a directory: a drive needs a disk image file or a block device");

    /// <summary>Reads exactly <paramref name="len"/> bytes at <paramref name="offset"/>; false on error or end of file.</summary>
    public bool ReadAt(byte* buf, ulong len, long offset)
    {
        while (len > 0)
        {
            nint r = Libc.pread(_fd, buf, (nuint)len, offset);
            if (r < 0)
            {
                if (Libc.Errno == Libc.EINTR) continue;
                return false;
            }
            if (r == 0) return false; // the file shrank under us
            buf += r;
            len -= (ulong)r;
            offset += r;
        }
        return true;
    }

    /// <summary>Writes exactly <paramref name="len"/> bytes at <paramref name="offset"/>; false on error.</summary>
    public bool WriteAt(byte* buf, ulong len, long offset)
    {
        while (len > 0)
        {
            nint r = Libc.pwrite(_fd, buf, (nuint)len, offset);
            if (r < 0)
            {
                if (Libc.Errno == Libc.EINTR) continue;
                return false;
            }
            if (r == 0) return false;
            buf += r;
            len -= (ulong)r;
            offset += r;
        }
        return true;
    }

    /// <summary>fdatasync: data and the metadata needed to read it back, which is what a guest FLUSH promises.</summary>
    public bool Flush()
    {
        while (Libc.fdatasync(_fd) < 0)
        {
            if (Libc.Errno != Libc.EINTR) return false;
        }
        return true;
    }

    public void Dispose()
    {
        if (_fd >= 0)
        {
            Libc.close(_fd);
            _fd = -1;
        }
    }

    /// <summary>
    /// The configured serial, or the file's device and inode numbers in decimal: stable across restarts for the
    /// same file and distinct between files, which is what a guest uses /dev/disk/by-id for.
    /// </summary>
    private static byte[] MakeSerial(int fd, string? serial)
    {
        var id = new byte[VirtioBlockConstants.IdBytes];
        string text = serial ?? DevInodeString(fd);
        for (int i = 0; i < text.Length && i < id.Length; i++)
            id[i] = text[i] < 0x80 ? (byte)text[i] : (byte)'?';
        return id;
    }

    private static string DevInodeString(int fd)
    {
        // struct stat starts with st_dev (u64) then st_ino (u64) on x86_64 and arm64; the buffer covers the
        // whole struct on both (144 and 128 bytes).
        byte* st = stackalloc byte[256];
        try
        {
            if (Libc.fstat(fd, st) < 0) return "";
        }
        catch (EntryPointNotFoundException)
        {
            return ""; // glibc before 2.33 exports only __fxstat: fall back to an all-zero id
        }
        ulong dev = *(ulong*)st;
        ulong ino = *(ulong*)(st + 8);
        return $"{dev}{ino}";
    }
}
