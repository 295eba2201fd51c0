using System.Runtime.InteropServices;
using static Flint.Sys.SocketLibc;

namespace Flint.Sys;

/// <summary>
/// Passing one file descriptor over a connected AF_UNIX stream with its message (SCM_RIGHTS ancillary data), as
/// Firecracker's uffd handshake does (vmm_sys_util's send_with_fd / recv_with_fd), and the peer's credentials.
/// </summary>
// SAFETY: sendmsg/recvmsg get stack control buffers sized by CMSG_SPACE and pinned data buffers.
public static unsafe class FdPassing
{
    /// <summary>struct cmsghdr (len, level, type) followed by one int, padded to 8: CMSG_SPACE(sizeof(int)) = 24.</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct CmsgOneFd { public nuint Len; public int Level; public int Type; public int Fd; public int Pad; }

    /// <summary>CMSG_LEN(sizeof(int)): the header (16) and the int.</summary>
    private const int CmsgLenOneFd = 20;

    /// <summary>Sends <paramref name="data"/> with <paramref name="passFd"/> attached in one sendmsg; the bytes sent or -errno.</summary>
    public static nint Send(int sock, ReadOnlySpan<byte> data, int passFd)
    {
        var cmsg = new CmsgOneFd { Len = CmsgLenOneFd, Level = SOL_SOCKET, Type = SCM_RIGHTS, Fd = passFd };
        // SAFETY: the iovec and the control block point at this frame's locals and the pinned span, all live across sendmsg.
        fixed (byte* d = data)
        {
            var iov = new IoVec { Base = d, Len = (nuint)data.Length };
            var msg = new MsgHdr { Iov = &iov, IovLen = 1, Control = &cmsg, ControlLen = (nuint)sizeof(CmsgOneFd) };
            while (true)
            {
                nint n = sendmsg(sock, &msg, MSG_NOSIGNAL);
                if (n >= 0) return n;
                int e = Libc.Errno;
                if (e != Libc.EINTR) return -e;
            }
        }
    }

    /// <summary>
    /// Receives into <paramref name="buf"/> and takes the one fd that came with it (close-on-exec), or -1 when none did.
    /// More fds than one, or a truncated control message, are closed and refused (-EINVAL): a peer gets no chance to
    /// leak descriptors into this process. Returns the bytes read (0: EOF) or -errno.
    /// </summary>
    public static nint Receive(int sock, Span<byte> buf, out int receivedFd)
    {
        receivedFd = -1;
        // Room for a few fds, so that a peer sending more is seen (and its fds closed) rather than truncated silently.
        const int ControlBytes = 64;
        byte* control = stackalloc byte[ControlBytes];
        new Span<byte>(control, ControlBytes).Clear();
        fixed (byte* b = buf)
        {
            var iov = new IoVec { Base = b, Len = (nuint)buf.Length };
            var msg = new MsgHdr { Iov = &iov, IovLen = 1, Control = control, ControlLen = ControlBytes };
            nint n;
            while (true)
            {
                n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
                if (n >= 0) break;
                int e = Libc.Errno;
                if (e != Libc.EINTR) return -e;
            }
            const int MSG_CTRUNC = 8;
            var fds = new List<int>();
            // Walk the control messages (CMSG_FIRSTHDR / CMSG_NXTHDR), each bounded by what recvmsg filled in.
            // SAFETY: every read below lies inside control[0, end), end = msg.ControlLen <= ControlBytes (the kernel
            // never reports more than the buffer it was given); a header claiming more than is left stops the walk.
            ulong off = 0, end = msg.ControlLen;
            while (off + 16 <= end)
            {
                nuint len = *(nuint*)(control + off);
                int level = *(int*)(control + off + 8), type = *(int*)(control + off + 12);
                if (len < 16 || off + len > end) break;
                if (level == SOL_SOCKET && type == SCM_RIGHTS)
                    for (ulong p = off + 16; p + 4 <= off + len; p += 4) fds.Add(*(int*)(control + p));
                off += (len + 7) & ~(nuint)7;
            }
            if (fds.Count > 1 || (msg.Flags & MSG_CTRUNC) != 0)
            {
                foreach (int fd in fds) Libc.close(fd);
                return -UffdAbi.EINVAL;
            }
            if (fds.Count == 1) receivedFd = fds[0];
            return n;
        }
    }

    /// <summary>SO_PEERCRED: the pid of the process at the other end of a connected Unix socket (as of its connect), or -1.</summary>
    public static int PeerPid(int sock)
    {
        int* cred = stackalloc int[3]; // struct ucred { pid, uid, gid }
        uint len = 12;
        return getsockopt(sock, SOL_SOCKET, SO_PEERCRED, cred, &len) == 0 ? cred[0] : -1;
    }
}
