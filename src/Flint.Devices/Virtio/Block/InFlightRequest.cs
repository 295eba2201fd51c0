using Flint.Sys;

namespace Flint.Devices.Virtio.Block;

/// <summary>
/// What the device must remember about a request handed to io_uring until its completion: the chain's head, where
/// its status byte goes, how many bytes it moves, and the iovec array the kernel reads the buffers from (which must
/// live as long as the operation). One per concurrently in-flight request; its iovec storage is native memory
/// allocated the first time the slot needs that many entries and kept for reuse.
/// </summary>
// SAFETY: the status pointer is the validated one-byte status descriptor in guest RAM, mapped for the VM's lifetime.
internal unsafe struct InFlightRequest
{
    public ushort Head;
    public uint Kind; // RequestIn, RequestOut or RequestFlush
    public byte* Status;
    public ulong Length;
    public ulong Offset; // for the error log
    public uint Epoch; // the engine epoch it was submitted in; an older one is a request abandoned by a reset
    public IoVec* Iov;
    public int IovCapacity;
}

/// <summary>A finished engine request, ready for its status byte and used-ring entry.</summary>
// SAFETY: the status pointer is the validated one-byte status descriptor in guest RAM, mapped for the VM's lifetime.
internal readonly unsafe struct EngineCompletion(ushort head, uint kind, byte* status, ulong length, ulong offset, int result)
{
    public ushort Head { get; } = head;
    public uint Kind { get; } = kind;
    public byte* Status { get; } = status;
    public ulong Length { get; } = length;
    public ulong Offset { get; } = offset;

    /// <summary>The kernel's answer: bytes moved, or -errno.</summary>
    public int Result { get; } = result;
}
