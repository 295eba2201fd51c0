using System.Text;
using static Flint.Sys.SocketLibc;

namespace Flint.Sys;

/// <summary>
/// Non-blocking AF_UNIX stream sockets (vsock's host side): listen, accept, connect, and the send/receive calls on
/// them, over the declarations in <see cref="SocketLibc"/> (and <see cref="Libc.readv"/>); scatter/gather goes through
/// <see cref="IoVec"/> and <see cref="MsgHdr"/>.
/// <para>Every wrapper retries EINTR and returns errors as negative errno instead of throwing: a socket failure is
/// an ordinary event for the caller (a peer gone), not an exception.</para>
/// </summary>
// SAFETY: bind/connect/accept get a stack sockaddr_un whose path is length-checked before the copy.
public static unsafe class UnixSockets
{
    /// <summary>socket(2) type and accept4(2) flags used here; the VMM thread's seccomp filter allows exactly these.</summary>
    public const int SocketType = SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, AcceptFlags = SOCK_NONBLOCK | SOCK_CLOEXEC;
    public const int SunPathMax = 108;

    /// <summary>Fills a sockaddr_un; false when the path does not fit sun_path.</summary>
    private static bool MakeAddr(string path, Span<byte> addr, out uint len)
    {
        len = 0;
        int n = Encoding.UTF8.GetByteCount(path);
        if (n == 0 || n >= SunPathMax) return false;
        addr.Clear();
        addr[0] = AF_UNIX; // sa_family, little-endian u16
        Encoding.UTF8.GetBytes(path, addr[2..]);
        len = (uint)(2 + n + 1);
        return true;
    }

    /// <summary>
    /// Binds and listens on <paramref name="path"/>; with <paramref name="removeStale"/> a file already there is removed
    /// first, without it bind fails (EADDRINUSE) as Firecracker's UnixListener::bind does. Throws on failure
    /// (<see cref="ArgumentException"/> for a path that does not fit sun_path, <see cref="SysException"/> otherwise).
    /// </summary>
    public static int Listen(string path, int backlog = 128, bool removeStale = true)
    {
        Span<byte> addr = stackalloc byte[2 + SunPathMax];
        if (!MakeAddr(path, addr, out uint len)) throw new ArgumentException($"vsock uds_path too long or empty: '{path}'");
        if (removeStale) Unlink(path);
        int fd = socket(AF_UNIX, SocketType, 0);
        if (fd < 0) throw SysException.Last("socket(AF_UNIX)");
        fixed (byte* a = addr)
        {
            if (bind(fd, a, len) < 0) { var e = BindFailure(path, Libc.Errno); Libc.close(fd); throw e; }
        }
        if (listen(fd, backlog) < 0) { var e = SysException.Last("listen"); Libc.close(fd); throw e; }
        return fd;
    }

    /// <summary>bind's failure, saying which directory is missing or not writable: the usual mistakes with a socket path.</summary>
    internal static SysException BindFailure(string path, int errno)
    {
        string dir = Path.GetDirectoryName(Path.GetFullPath(path)) ?? "/";
        return new SysException($"bind({path})", errno, errno switch
        {
            Libc.ENOENT => $"the directory {dir} does not exist: create it first",
            Libc.EACCES => $"the user running flint may not create files in {dir}",
            _ => "",
        });
    }

    /// <summary>Non-blocking connect to a Unix socket; returns the fd or -errno. A full backlog (EAGAIN) is a failure.</summary>
    public static int Connect(string path)
    {
        Span<byte> addr = stackalloc byte[2 + SunPathMax];
        if (!MakeAddr(path, addr, out uint len)) return -Libc.ENOENT;
        int fd = socket(AF_UNIX, SocketType, 0);
        if (fd < 0) return -Libc.Errno;
        int r;
        fixed (byte* a = addr)
        {
            do r = connect(fd, a, len); while (r < 0 && Libc.Errno == Libc.EINTR);
        }
        if (r < 0)
        {
            int e = Libc.Errno;
            Libc.close(fd);
            return -e;
        }
        return fd;
    }

    /// <summary>accept4 with <see cref="AcceptFlags"/>; the fd, or -1 with errno set.</summary>
    public static int Accept(int listenFd) => accept4(listenFd, null, null, AcceptFlags);

    public static void Unlink(string path)
    {
        int n = Encoding.UTF8.GetByteCount(path);
        Span<byte> buf = n < 1024 ? stackalloc byte[n + 1] : new byte[n + 1];
        Encoding.UTF8.GetBytes(path, buf);
        buf[n] = 0;
        fixed (byte* p = buf) unlink(p);
    }

    /// <summary>Non-blocking send without SIGPIPE; bytes written, 0 on EAGAIN, -errno on error.</summary>
    public static nint Send(int fd, void* buf, nuint len)
    {
        while (true)
        {
            nint n = send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n >= 0) return n;
            int e = Libc.Errno;
            if (e == Libc.EINTR) continue;
            return e == Libc.EAGAIN ? 0 : -e;
        }
    }

    /// <summary>Gathered non-blocking send without SIGPIPE; bytes written, 0 on EAGAIN, -errno on error.</summary>
    public static nint SendV(int fd, IoVec* iov, int count)
    {
        var msg = new MsgHdr { Iov = iov, IovLen = (nuint)count };
        while (true)
        {
            nint n = sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n >= 0) return n;
            int e = Libc.Errno;
            if (e == Libc.EINTR) continue;
            return e == Libc.EAGAIN ? 0 : -e;
        }
    }

    /// <summary>Scattered read; bytes read (0 = EOF), -EAGAIN when nothing is there, -errno on error.</summary>
    public static nint ReadV(int fd, IoVec* iov, int count)
    {
        while (true)
        {
            nint n = Libc.readv(fd, iov, count);
            if (n >= 0) return n;
            int e = Libc.Errno;
            if (e == Libc.EINTR) continue;
            return -e;
        }
    }

    /// <summary>Non-blocking recv; bytes (0 = EOF), -errno (EAGAIN included) on failure.</summary>
    public static nint Recv(int fd, void* buf, nuint len, int flags)
    {
        while (true)
        {
            nint n = recv(fd, buf, len, flags | MSG_DONTWAIT);
            if (n >= 0) return n;
            int e = Libc.Errno;
            if (e == Libc.EINTR) continue;
            return -e;
        }
    }

    /// <summary>shutdown(fd, SHUT_WR): the peer reads EOF once what was sent is drained. Errors are ignored (the peer may be gone).</summary>
    public static void ShutdownWrite(int fd) => shutdown(fd, SHUT_WR);
}
