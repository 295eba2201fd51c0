using System.Runtime.InteropServices;

namespace Flint.Sys;

/// <summary>
/// struct iovec: one (base, length) piece of a scatter/gather list for readv/writev/sendmsg. The one definition in
/// Flint: devices build these over guest memory and hand them straight to the kernel.
/// </summary>
[StructLayout(LayoutKind.Sequential)]
// SAFETY: the C struct iovec: a pointer and length the caller fills from memory that stays pinned or mapped during the call.
public unsafe struct IoVec
{
    public void* Base;
    public nuint Len;

    /// <summary>Linux's UIO_MAXIOV: a longer vector is refused with EINVAL.</summary>
    public const int Max = 1024;
}
