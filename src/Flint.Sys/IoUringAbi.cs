using System.Runtime.InteropServices;

namespace Flint.Sys;

/// <summary>
/// The io_uring ABI as &lt;linux/io_uring.h&gt; lays it out (x86_64 and arm64 share it): the setup parameters with the
/// ring offsets the kernel fills in, the 64-byte submission entry, the 16-byte completion entry, and the constants
/// Flint uses. Only what the block engine needs: READV, WRITEV and FSYNC on one registered file.
/// </summary>
public static class IoUringAbi
{
    // Syscall numbers: the generic table, the same on x86_64 and arm64.
    public const long SysSetup = 425, SysEnter = 426, SysRegister = 427;

    // mmap offsets of the three shared areas.
    public const long OffSqRing = 0, OffCqRing = 0x8000000, OffSqes = 0x10000000;

    // io_uring_params.flags / .features.
    public const uint SetupRDisabled = 1u << 6;
    public const uint FeatSingleMmap = 1u << 0, FeatExtArg = 1u << 8;

    // io_uring_enter flags.
    public const uint EnterGetEvents = 1u << 0, EnterExtArg = 1u << 3;

    // Opcodes.
    public const byte OpReadv = 1, OpWritev = 2, OpFsync = 3;

    // Submission entry flags and fsync flags.
    public const byte SqeFixedFile = 1 << 0;
    public const uint FsyncDataSync = 1u << 0;

    // io_uring_register opcodes.
    public const uint RegisterFiles = 2, RegisterEventFd = 4, RegisterRestrictions = 11, RegisterEnableRings = 12;

    // io_uring_restriction.opcode.
    public const ushort RestrictionSqeOp = 1, RestrictionSqeFlagsAllowed = 2, RestrictionSqeFlagsRequired = 3;

    public const int ETIME = 62, EBUSY = 16, ENOSYS = 38, EPERM = 1;
}

[StructLayout(LayoutKind.Sequential)]
public struct IoSqRingOffsets
{
    public uint Head, Tail, RingMask, RingEntries, Flags, Dropped, Array, Resv1;
    public ulong UserAddr;
}

[StructLayout(LayoutKind.Sequential)]
public struct IoCqRingOffsets
{
    public uint Head, Tail, RingMask, RingEntries, Overflow, Cqes, Flags, Resv1;
    public ulong UserAddr;
}

/// <summary>struct io_uring_params (120 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct IoUringParams
{
    public uint SqEntries, CqEntries, Flags, SqThreadCpu, SqThreadIdle, Features, WqFd;
    public uint Resv0, Resv1, Resv2;
    public IoSqRingOffsets SqOff;
    public IoCqRingOffsets CqOff;
}

/// <summary>struct io_uring_sqe (64 bytes), the fields READV/WRITEV/FSYNC use.</summary>
[StructLayout(LayoutKind.Explicit, Size = 64)]
public struct IoUringSqe
{
    [FieldOffset(0)] public byte Opcode;
    [FieldOffset(1)] public byte Flags;
    [FieldOffset(2)] public ushort IoPrio;
    [FieldOffset(4)] public int Fd;
    [FieldOffset(8)] public ulong Off;
    [FieldOffset(16)] public ulong Addr;
    [FieldOffset(24)] public uint Len;
    [FieldOffset(28)] public uint OpFlags; // rw_flags / fsync_flags
    [FieldOffset(32)] public ulong UserData;
    [FieldOffset(40)] public ulong Tail0;
    [FieldOffset(48)] public ulong Tail1;
    [FieldOffset(56)] public ulong Tail2;
}

/// <summary>struct io_uring_cqe (16 bytes, without IORING_SETUP_CQE32).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct IoUringCqe
{
    public ulong UserData;
    public int Res;
    public uint Flags;
}

/// <summary>struct io_uring_restriction (16 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public struct IoUringRestriction
{
    public ushort Opcode;
    public byte Arg; // register_op / sqe_op / sqe_flags
    public byte Resv;
    public uint Resv2a, Resv2b, Resv2c;
}

/// <summary>struct io_uring_getevents_arg (IORING_ENTER_EXT_ARG): how a wait gets a timeout.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct IoUringGetEventsArg
{
    public ulong SigMask;
    public uint SigMaskSz;
    public uint MinWaitUsec;
    public ulong Ts;
}
