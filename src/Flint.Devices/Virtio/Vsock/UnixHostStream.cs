using Flint.Sys;

namespace Flint.Devices.Virtio.Vsock;

/// <summary>A connected, non-blocking AF_UNIX stream socket as the host end of a vsock connection.</summary>
// SAFETY: sendmsg/readv get the caller's iovecs (validated guest buffers or pinned memory) and counts unchanged.
internal sealed unsafe class UnixHostStream : IVsockHostStream
{
    public UnixHostStream(int fd) => Fd = fd;

    public int Fd { get; private set; }

    public nint Send(ReadOnlySpan<byte> data)
    {
        // SAFETY: the span is pinned for the call; send reads at most data.Length bytes from it.
        fixed (byte* p = data) return UnixSockets.Send(Fd, p, (nuint)data.Length);
    }

    public nint SendV(IoVec* iov, int count) => UnixSockets.SendV(Fd, iov, count);

    public nint ReadV(IoVec* iov, int count) => UnixSockets.ReadV(Fd, iov, count);

    public nint Recv(Span<byte> buffer, bool peek)
    {
        // SAFETY: the span is pinned for the call; recv writes at most buffer.Length bytes into it.
        fixed (byte* p = buffer) return UnixSockets.Recv(Fd, p, (nuint)buffer.Length, peek ? SocketLibc.MSG_PEEK : 0);
    }

    public void ShutdownWrite()
    {
        if (Fd >= 0) UnixSockets.ShutdownWrite(Fd);
    }

    public void Close()
    {
        if (Fd < 0) return;
        Libc.close(Fd);
        Fd = -1;
    }
}
