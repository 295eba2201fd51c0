using System.Runtime.InteropServices;
using static Flint.Sys.SocketLibc;

namespace Flint.Sys;

/// <summary>
/// A connected AF_UNIX stream for a request/answer control protocol with another host process (vhost-user): every
/// wait on it is bounded. Receives block for at most the receive timeout (SO_RCVTIMEO); sends never block at all
/// (MSG_DONTWAIT), because a peer that stops reading must not stall the thread that talks to it (a vCPU, for one):
/// a send that does not fit the socket buffer at once is a failure, not a wait. Files travel as SCM_RIGHTS.
/// <para>Errors are returned as negative errno, never thrown: a peer that misbehaves is an ordinary event.</para>
/// </summary>
// SAFETY: send/recv get pinned buffers with their exact lengths; the SCM_RIGHTS control buffer is sized for the fds it carries.
public sealed unsafe class BoundedUnixStream : IDisposable
{
    /// <summary>The most descriptors one message may carry: a vhost-user memory table has at most 8 regions.</summary>
    public const int MaxFds = 8;

    private int _fd;

    private BoundedUnixStream(int fd) => _fd = fd;

    public int Fd => _fd;

    /// <summary>
    /// Connects to <paramref name="path"/>; returns the stream, or null with <paramref name="errno"/> set. The socket is
    /// made with the flags the VMM's seccomp filter allows (non-blocking), then switched to blocking receives with a
    /// <paramref name="receiveTimeout"/> bound.
    /// </summary>
    public static BoundedUnixStream? Connect(string path, TimeSpan receiveTimeout, out int errno)
    {
        int fd = UnixSockets.Connect(path);
        if (fd < 0) { errno = -fd; return null; }
        int flags = Libc.fcntl(fd, Libc.F_GETFL, 0);
        var tv = new TimeVal { Sec = (long)receiveTimeout.TotalSeconds, Usec = receiveTimeout.Milliseconds * 1000L };
        if (flags < 0 || Libc.fcntl(fd, Libc.F_SETFL, flags & ~Libc.O_NONBLOCK) < 0
            || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, (uint)sizeof(TimeVal)) < 0)
        {
            errno = Libc.Errno;
            Libc.close(fd);
            return null;
        }
        errno = 0;
        return new BoundedUnixStream(fd);
    }

    /// <summary>struct timeval.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct TimeVal { public long Sec; public long Usec; }

    /// <summary>
    /// Sends <paramref name="data"/> in one sendmsg with <paramref name="fds"/> attached (none: no control message).
    /// Returns 0 when every byte went, -errno otherwise (-EAGAIN: the peer is not reading; -EMSGSIZE for a partial send).
    /// </summary>
    public int Send(ReadOnlySpan<byte> data, ReadOnlySpan<int> fds)
    {
        if (fds.Length > MaxFds) return -22; // EINVAL
        // CMSG_SPACE(MaxFds * 4) = 16 + 32.
        const int ControlMax = 16 + MaxFds * 4;
        byte* control = stackalloc byte[ControlMax];
        int controlLen = 0;
        if (fds.Length > 0)
        {
            int len = 16 + fds.Length * 4;
            controlLen = (len + 7) & ~7;
            new Span<byte>(control, controlLen).Clear();
            *(nuint*)control = (nuint)len;
            *(int*)(control + 8) = SOL_SOCKET;
            *(int*)(control + 12) = SCM_RIGHTS;
            for (int i = 0; i < fds.Length; i++) *(int*)(control + 16 + 4 * i) = fds[i];
        }
        // SAFETY: the iovec and control block point at this frame's stack and the pinned span, live across sendmsg;
        // controlLen never exceeds ControlMax.
        fixed (byte* d = data)
        {
            var iov = new IoVec { Base = d, Len = (nuint)data.Length };
            var msg = new MsgHdr { Iov = &iov, IovLen = 1, Control = controlLen > 0 ? control : null, ControlLen = (nuint)controlLen };
            while (true)
            {
                nint n = sendmsg(_fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n == data.Length) return 0;
                if (n >= 0) return -90; // EMSGSIZE: a message cut in two would desynchronise the stream
                int e = Libc.Errno;
                if (e != Libc.EINTR) return -e;
            }
        }
    }

    /// <summary>
    /// Fills <paramref name="buf"/> exactly. Returns 0 when it is full, -errno on failure (-EAGAIN: nothing within the
    /// receive timeout), 1 when the peer closed before the first byte or part way through. Descriptors the peer
    /// attaches are not accepted (recv takes no control data; the kernel discards and closes them).
    /// </summary>
    public int ReceiveExact(Span<byte> buf)
    {
        int got = 0;
        // SAFETY: recv writes at most buf.Length - got bytes at b + got, inside the pinned span.
        fixed (byte* b = buf)
        {
            while (got < buf.Length)
            {
                nint n = recv(_fd, b + got, (nuint)(buf.Length - got), MSG_NOSIGNAL);
                if (n == 0) return 1;
                if (n < 0)
                {
                    int e = Libc.Errno;
                    if (e == Libc.EINTR) continue;
                    return -e;
                }
                got += (int)n;
            }
        }
        return 0;
    }

    public void Dispose()
    {
        int fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0) Libc.close(fd);
    }
}
