using System.Runtime.InteropServices;

namespace Flint.Sys;

/// <summary>struct msghdr (x86_64/arm64 layout) for sendmsg(2): a scatter/gather send of <see cref="IoVec"/>s.</summary>
[StructLayout(LayoutKind.Sequential)]
// SAFETY: the C struct msghdr: pointers to iovecs and a control buffer the caller keeps pinned for the call.
public unsafe struct MsgHdr
{
    public void* Name;
    public uint NameLen;
    public IoVec* Iov;
    public nuint IovLen;
    public void* Control;
    public nuint ControlLen;
    public int Flags;
}
