using System.Runtime.InteropServices;

namespace Flint.Seccomp;

/// <summary>One classic BPF instruction: <c>struct sock_filter</c> (8 bytes).</summary>
[StructLayout(LayoutKind.Sequential)]
public readonly record struct SockFilter(ushort Code, byte Jt, byte Jf, uint K)
{
    public override string ToString() => $"{{ 0x{Code:x2}, {Jt}, {Jf}, 0x{K:x8} }}";
}

/// <summary>Classic BPF opcodes and seccomp constants used by the compiler.</summary>
public static class Bpf
{
    // Instruction classes and fields (linux/filter.h, linux/bpf_common.h).
    public const ushort LD = 0x00, ALU = 0x04, JMP = 0x05, RET = 0x06;
    public const ushort W = 0x00, ABS = 0x20, K = 0x00;
    public const ushort AND = 0x50;
    public const ushort JA = 0x00, JEQ = 0x10, JGT = 0x20, JGE = 0x30, JSET = 0x40;

    public const ushort LdAbsW = LD | W | ABS;      // 0x20: A = *(u32 *)(data + k)
    public const ushort AndK = ALU | AND | K;        // 0x54: A &= k
    public const ushort Ja = JMP | JA;               // 0x05: pc += k
    public const ushort JeqK = JMP | JEQ | K;        // 0x15
    public const ushort JgtK = JMP | JGT | K;        // 0x25
    public const ushort JgeK = JMP | JGE | K;        // 0x35
    public const ushort RetK = RET | K;              // 0x06

    /// <summary>BPF_MAXINSNS: the kernel refuses longer programs.</summary>
    public const int MaxInstructions = 4096;

    // struct seccomp_data offsets.
    public const uint NrOffset = 0, ArchOffset = 4, ArgsOffset = 16;
    public static uint ArgLo(int index) => ArgsOffset + 8u * (uint)index;
    public static uint ArgHi(int index) => ArgLo(index) + 4;

    public const uint AUDIT_ARCH_X86_64 = 0xC000003E;

    // Return values (linux/seccomp.h).
    public const uint SECCOMP_RET_KILL_PROCESS = 0x80000000, SECCOMP_RET_KILL_THREAD = 0x00000000,
        SECCOMP_RET_TRAP = 0x00030000, SECCOMP_RET_ERRNO = 0x00050000, SECCOMP_RET_TRACE = 0x7ff00000,
        SECCOMP_RET_LOG = 0x7ffc0000, SECCOMP_RET_ALLOW = 0x7fff0000, SECCOMP_RET_DATA = 0x0000ffff;
}
