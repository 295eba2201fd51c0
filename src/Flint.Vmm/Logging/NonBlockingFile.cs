using Flint.Sys;

namespace Flint.Vmm.Logging;

/// <summary>What one <see cref="NonBlockingFile.Write"/> achieved.</summary>
public enum WriteOutcome
{
    /// <summary>Every byte was written.</summary>
    Written,
    /// <summary>The FIFO has no room (no reader, or the reader is slow): the bytes are dropped, the VMM does not wait.</summary>
    WouldBlock,
    /// <summary>The write failed (full disk, I/O error): the bytes are dropped.</summary>
    Failed,
}

/// <summary>
/// A log or metrics destination opened as Firecracker opens them (utils::open_file_nonblock): read-write, created if
/// missing, O_NONBLOCK. Read-write matters for a FIFO: write-only with O_NONBLOCK fails with ENXIO while nobody reads,
/// and write-only without it blocks start-up until somebody does. With O_NONBLOCK a FIFO that nobody drains makes
/// writes fail with EAGAIN once its 64 KiB fill up; the caller drops the line and counts it instead of stalling the
/// VMM thread. O_APPEND keeps earlier content of a regular file (ignored on a FIFO).
/// </summary>
// SAFETY: write(2) gets the caller's bytes, pinned for the call, with their length.
public sealed unsafe class NonBlockingFile : IDisposable
{
    private int _fd;

    public int Fd => _fd;

    /// <summary>The errno of the last failed write (0 after a successful one).</summary>
    public int LastErrno { get; private set; }

    private NonBlockingFile(int fd) => _fd = fd;

    /// <summary>Opens <paramref name="path"/>; throws <see cref="IOException"/> with the system's reason on failure.</summary>
    public static NonBlockingFile Open(string path)
    {
        if (path.Length == 0) throw new IOException("No such file or directory (os error 2)");
        int fd = Libc.Open(path, Libc.O_RDWR | Libc.O_CREAT | Libc.O_APPEND | Libc.O_NONBLOCK, 0x1A4 /* 0644 */);
        if (fd < 0)
        {
            int errno = Libc.Errno;
            throw new IOException(OsError(errno));
        }
        return new NonBlockingFile(fd);
    }

    /// <summary>Rust's io::Error Display, which Firecracker's messages carry: "No space left on device (os error 28)".</summary>
    public static string OsError(int errno) => $"{Libc.StrError(errno)} (os error {errno})";

    /// <summary>Writes all of <paramref name="bytes"/> or reports why not; never blocks.</summary>
    public WriteOutcome Write(ReadOnlySpan<byte> bytes)
    {
        fixed (byte* p = bytes)
        {
            int done = 0;
            while (done < bytes.Length)
            {
                // SAFETY: p points at the pinned span; [done, Length) lies inside it.
                nint n = Libc.write(_fd, p + done, (nuint)(bytes.Length - done));
                if (n > 0) { done += (int)n; continue; }
                int errno = n < 0 ? Libc.Errno : 5 /* EIO: a zero-byte write makes no progress */;
                if (errno == Libc.EINTR) continue;
                LastErrno = errno;
                return errno == Libc.EAGAIN ? WriteOutcome.WouldBlock : WriteOutcome.Failed;
            }
        }
        LastErrno = 0;
        return WriteOutcome.Written;
    }

    public void Dispose()
    {
        int fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0) Libc.close(fd);
    }
}
