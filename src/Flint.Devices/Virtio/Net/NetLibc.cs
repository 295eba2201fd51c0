using System.Runtime.InteropServices;

namespace Flint.Devices.Virtio.Net;

/// <summary>struct iovec.</summary>
[StructLayout(LayoutKind.Sequential)]
public unsafe struct IoVec
{
    public void* Base;
    public nuint Len;
}

/// <summary>The scatter/gather calls the tap needs (Flint.Sys has no readv/writev); blittable, so NativeAOT calls them directly.</summary>
internal static unsafe class NetLibc
{
    [DllImport("libc", SetLastError = true)] public static extern nint readv(int fd, IoVec* iov, int iovcnt);
    [DllImport("libc", SetLastError = true)] public static extern nint writev(int fd, IoVec* iov, int iovcnt);

    /// <summary>Linux's UIO_MAXIOV: a longer vector is refused with EINVAL.</summary>
    public const int IovMax = 1024;
}
