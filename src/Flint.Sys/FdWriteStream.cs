namespace Flint.Sys;

/// <summary>
/// A write-only, unbuffered stream over a file descriptor it does not own: every Write is write(2) on that fd and
/// nothing else. The serial console writes through it from vCPU threads, whose seccomp filter allows write but no
/// ioctl: .NET's console stream initialises the terminal on its first write (tcgetattr on stdin, ioctl TCGETS), which
/// killed flint with --log-path set (then nothing else had written to stdout before the guest's first console byte).
/// </summary>
// SAFETY: write(2) gets the caller's span, pinned for the call, with its length.
public sealed unsafe class FdWriteStream(int fd) : Stream
{
    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void WriteByte(byte value) => Write(new ReadOnlySpan<byte>(in value));

    /// <summary>Writes every byte, retrying short writes and EINTR; any other failure (EAGAIN, EPIPE, EIO) is an IOException.</summary>
    public override void Write(ReadOnlySpan<byte> buffer)
    {
        fixed (byte* p = buffer)
        {
            int done = 0;
            while (done < buffer.Length)
            {
                // SAFETY: p points at the pinned span; [done, Length) lies inside it.
                nint n = Libc.write(fd, p + done, (nuint)(buffer.Length - done));
                if (n > 0) { done += (int)n; continue; }
                int errno = n < 0 ? Libc.Errno : 0;
                if (errno == Libc.EINTR) continue;
                // No allocation-free way to say more; the caller counts the miss (uart.missed_write_count).
                throw new IOException(n == 0 ? "write returned 0" : "write failed", errno);
            }
        }
    }

    /// <summary>Nothing is buffered.</summary>
    public override void Flush() { }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
}
