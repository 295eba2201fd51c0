using System.Runtime.InteropServices;

namespace Flint.Sys;

/// <summary>
/// The userfaultfd ABI of &lt;linux/userfaultfd.h&gt; (x86_64): ioctl numbers, flags and the structures they take.
/// The ioctl numbers are _IOWR/_IOR(0xAA, nr, struct) spelled out, so a wrong size shows here, next to the struct.
/// </summary>
public static class UffdAbi
{
    /// <summary>userfaultfd(2) on x86_64.</summary>
    public const long SysUserfaultfd = 323;
    public const ulong Api = 0xAA;

    /// <summary>_IOWR(0xAA, 0x3F, struct uffdio_api) (24 bytes).</summary>
    public const nuint UFFDIO_API = 0xC018AA3F;
    /// <summary>_IOWR(0xAA, 0x00, struct uffdio_register) (32 bytes).</summary>
    public const nuint UFFDIO_REGISTER = 0xC020AA00;
    /// <summary>_IOR(0xAA, 0x01, struct uffdio_range) (16 bytes).</summary>
    public const nuint UFFDIO_UNREGISTER = 0x8010AA01;
    /// <summary>_IOR(0xAA, 0x02, struct uffdio_range).</summary>
    public const nuint UFFDIO_WAKE = 0x8010AA02;
    /// <summary>_IOWR(0xAA, 0x03, struct uffdio_copy) (40 bytes).</summary>
    public const nuint UFFDIO_COPY = 0xC028AA03;
    /// <summary>_IOWR(0xAA, 0x04, struct uffdio_zeropage) (32 bytes).</summary>
    public const nuint UFFDIO_ZEROPAGE = 0xC020AA04;
    /// <summary>_IO(0xAA, 0x00) on /dev/userfaultfd (Linux 6.1+): a new userfaultfd, its flags as the argument.</summary>
    public const nuint USERFAULTFD_IOC_NEW = 0xAA00;

    /// <summary>UFFD_FEATURE_EVENT_REMOVE: madvise(DONTNEED/REMOVE) on a registered range is reported to the handler (the balloon).</summary>
    public const ulong FeatureEventRemove = 1UL << 3;
    public const ulong RegisterModeMissing = 1;

    public const byte EventPagefault = 0x12, EventFork = 0x13, EventRemap = 0x14, EventRemove = 0x15, EventUnmap = 0x16;
    public const int EEXIST = 17, ENOSYS = 38, EINVAL = 22;
}

[StructLayout(LayoutKind.Sequential)]
public struct UffdioApi { public ulong Api; public ulong Features; public ulong Ioctls; }

[StructLayout(LayoutKind.Sequential)]
public struct UffdioRange { public ulong Start; public ulong Len; }

[StructLayout(LayoutKind.Sequential)]
public struct UffdioRegister { public UffdioRange Range; public ulong Mode; public ulong Ioctls; }

[StructLayout(LayoutKind.Sequential)]
public struct UffdioCopy { public ulong Dst; public ulong Src; public ulong Len; public ulong Mode; public long Copy; }

[StructLayout(LayoutKind.Sequential)]
public struct UffdioZeropage { public UffdioRange Range; public ulong Mode; public long Zeropage; }

/// <summary>
/// struct uffd_msg (32 bytes, packed): the event byte, then a union. For a page fault Arg0 is the flags and Arg1 the
/// address; for a remove, Arg0..Arg1 is [start, end).
/// </summary>
[StructLayout(LayoutKind.Explicit, Size = 32)]
public struct UffdMsg
{
    [FieldOffset(0)] public byte Event;
    [FieldOffset(8)] public ulong Arg0;
    [FieldOffset(16)] public ulong Arg1;
    [FieldOffset(24)] public ulong Arg2;
}
