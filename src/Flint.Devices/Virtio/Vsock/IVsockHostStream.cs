using Flint.Sys;

namespace Flint.Devices.Virtio.Vsock;

/// <summary>
/// The host end of one vsock connection (a Unix stream socket in production; a fake in the state-machine tests).
/// Non-blocking throughout. Results follow the syscalls: byte counts, 0 for EOF on reads, negative errno on errors.
/// </summary>
// SAFETY: the iovec arrays passed in point at validated guest buffers or pinned host memory, with their counts.
internal unsafe interface IVsockHostStream
{
    /// <summary>The fd to poll, or -1 once closed (or for a stream that has none).</summary>
    int Fd { get; }

    /// <summary>Bytes written; 0 when the socket takes nothing now (EAGAIN); -errno on error.</summary>
    nint Send(ReadOnlySpan<byte> data);

    /// <summary>Gathered <see cref="Send"/>.</summary>
    nint SendV(IoVec* iov, int count);

    /// <summary>Scattered read: bytes read, 0 at EOF, -EAGAIN when nothing is there, -errno on error.</summary>
    nint ReadV(IoVec* iov, int count);

    /// <summary>recv (optionally MSG_PEEK): bytes, 0 at EOF, -errno (EAGAIN included) on failure.</summary>
    nint Recv(Span<byte> buffer, bool peek);

    /// <summary>Half-closes the write side: the host peer reads EOF once what was sent is drained.</summary>
    void ShutdownWrite();

    /// <summary>Closes the stream; <see cref="Fd"/> becomes -1. Idempotent.</summary>
    void Close();
}
