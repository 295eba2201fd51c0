using System.Runtime.InteropServices;

namespace Flint.Sys;

/// <summary>
/// The socket calls of libc (AF_UNIX streams, as the vsock back-end uses them). Blittable signatures, so NativeAOT
/// calls them directly. Each is declared here only; <see cref="UnixSockets"/> wraps them (EINTR, -errno) for vsock.
/// readv/writev are in <see cref="Libc"/>; the scatter/gather element is <see cref="IoVec"/>.
/// </summary>
// SAFETY: P/Invoke declarations only; callers pass pinned or stack buffers with their lengths.
public static unsafe class SocketLibc
{
    private const string L = "libc";

    public const int AF_UNIX = 1, SOCK_STREAM = 1, SOCK_NONBLOCK = 0x800, SOCK_CLOEXEC = 0x80000;
    public const int MSG_PEEK = 2, MSG_DONTWAIT = 0x40, MSG_NOSIGNAL = 0x4000;
    public const int SHUT_RD = 0, SHUT_WR = 1, SHUT_RDWR = 2;
    public const int SOL_SOCKET = 1, SCM_RIGHTS = 1, SO_PEERCRED = 17, SO_RCVTIMEO = 20, SO_SNDTIMEO = 21, MSG_CMSG_CLOEXEC = 0x40000000;

    [DllImport(L, SetLastError = true)] public static extern int socket(int domain, int type, int protocol);
    [DllImport(L, SetLastError = true)] public static extern int bind(int fd, byte* addr, uint len);
    [DllImport(L, SetLastError = true)] public static extern int listen(int fd, int backlog);
    [DllImport(L, SetLastError = true)] public static extern int accept4(int fd, byte* addr, uint* len, int flags);
    [DllImport(L, SetLastError = true)] public static extern int connect(int fd, byte* addr, uint len);
    [DllImport(L, SetLastError = true)] public static extern nint recv(int fd, void* buf, nuint len, int flags);
    [DllImport(L, SetLastError = true)] public static extern nint send(int fd, void* buf, nuint len, int flags);
    [DllImport(L, SetLastError = true)] public static extern nint sendmsg(int fd, MsgHdr* msg, int flags);
    [DllImport(L, SetLastError = true)] public static extern nint recvmsg(int fd, MsgHdr* msg, int flags);
    [DllImport(L, SetLastError = true)] public static extern int setsockopt(int fd, int level, int name, void* value, uint len);
    [DllImport(L, SetLastError = true)] public static extern int getsockopt(int fd, int level, int name, void* value, uint* len);
    [DllImport(L, SetLastError = true)] public static extern int shutdown(int fd, int how);
    [DllImport(L, SetLastError = true)] public static extern int unlink(byte* path);
}
