using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Flint.Kvm;

// Blittable mirrors of <linux/kvm.h> (x86_64). Sizes and offsets are asserted in Flint.Kvm.Tests.

[StructLayout(LayoutKind.Sequential)]
public struct KvmRegs
{
    public ulong Rax, Rbx, Rcx, Rdx, Rsi, Rdi, Rsp, Rbp;
    public ulong R8, R9, R10, R11, R12, R13, R14, R15;
    public ulong Rip, Rflags;
}

[StructLayout(LayoutKind.Sequential)]
public struct KvmSegment
{
    public ulong Base;
    public uint Limit;
    public ushort Selector;
    public byte Type, Present, Dpl, Db, S, L, G, Avl, Unusable, Padding;
}

[StructLayout(LayoutKind.Sequential)]
public struct KvmDtable
{
    public ulong Base;
    public ushort Limit;
    public ushort Pad0, Pad1, Pad2;
}

[StructLayout(LayoutKind.Sequential)]
// SAFETY: a kernel ABI struct: fixed buffers have the kernel's sizes, checked by StructLayoutTests.
public unsafe struct KvmSregs
{
    public KvmSegment Cs, Ds, Es, Fs, Gs, Ss, Tr, Ldt;
    public KvmDtable Gdt, Idt;
    public ulong Cr0, Cr2, Cr3, Cr4, Cr8, Efer, ApicBase;
    public fixed ulong InterruptBitmap[4];
}

[StructLayout(LayoutKind.Sequential)]
// SAFETY: a kernel ABI struct: fixed buffers have the kernel's sizes, checked by StructLayoutTests.
public unsafe struct KvmFpu
{
    public fixed byte Fpr[128];
    public ushort Fcw, Fsw;
    public byte Ftwx, Pad1;
    public ushort LastOpcode;
    public ulong LastIp, LastDp;
    public fixed byte Xmm[256];
    public uint Mxcsr, Pad2;
}

[StructLayout(LayoutKind.Sequential)]
public struct KvmMsrEntry
{
    public uint Index, Reserved;
    public ulong Data;
}

[StructLayout(LayoutKind.Sequential)]
public struct KvmCpuidEntry2
{
    public uint Function, Index, Flags, Eax, Ebx, Ecx, Edx;
    public uint Pad0, Pad1, Pad2;

    public const uint KVM_CPUID_FLAG_SIGNIFCANT_INDEX = 1;
}

[StructLayout(LayoutKind.Sequential)]
public struct KvmUserspaceMemoryRegion
{
    public uint Slot, Flags;
    public ulong GuestPhysAddr, MemorySize, UserspaceAddr;
}

[StructLayout(LayoutKind.Sequential)]
// SAFETY: a kernel ABI struct: fixed buffers have the kernel's sizes, checked by StructLayoutTests.
public unsafe struct KvmPitConfig
{
    public uint Flags;
    public fixed uint Pad[15];
}

[StructLayout(LayoutKind.Sequential)]
// SAFETY: a kernel ABI struct: fixed buffers have the kernel's sizes, checked by StructLayoutTests.
public unsafe struct KvmIrqfd
{
    public uint Fd, Gsi, Flags, ResampleFd;
    public fixed byte Pad[16];
}

[StructLayout(LayoutKind.Sequential)]
// SAFETY: a kernel ABI struct: fixed buffers have the kernel's sizes, checked by StructLayoutTests.
public unsafe struct KvmIoeventfd
{
    public ulong Datamatch, Addr;
    public uint Len;
    public int Fd;
    public uint Flags;
    public fixed byte Pad[36];
}

[StructLayout(LayoutKind.Sequential)]
public struct KvmIrqLevel { public uint Irq, Level; }

[StructLayout(LayoutKind.Sequential)]
// SAFETY: a kernel ABI struct: fixed buffers have the kernel's sizes, checked by StructLayoutTests.
public unsafe struct KvmLapicState { public fixed byte Regs[1024]; }

[StructLayout(LayoutKind.Sequential)]
public struct KvmDirtyLog { public uint Slot, Pad; public ulong DirtyBitmap; }

/// <summary>The fixed head of the mmap'ed kvm_run page, up to and including the exit union.</summary>
[StructLayout(LayoutKind.Explicit, Size = 288)]
// SAFETY: a kernel ABI struct: fixed buffers have the kernel's sizes, checked by StructLayoutTests.
public unsafe struct KvmRun
{
    [FieldOffset(0)] public byte RequestInterruptWindow;
    [FieldOffset(1)] public byte ImmediateExit;
    [FieldOffset(8)] public uint ExitReason;
    [FieldOffset(12)] public byte ReadyForInterruptInjection;
    [FieldOffset(13)] public byte IfFlag;
    [FieldOffset(14)] public ushort Flags;
    [FieldOffset(16)] public ulong Cr8;
    [FieldOffset(24)] public ulong ApicBase;

    // exit union at 32
    [FieldOffset(32)] public ulong HardwareExitReason;           // hw / fail_entry
    [FieldOffset(32)] public IoExit Io;
    [FieldOffset(32)] public MmioExit Mmio;
    [FieldOffset(32)] public InternalExit Internal;
    [FieldOffset(32)] public SystemEventExit SystemEvent;
}

[StructLayout(LayoutKind.Sequential)]
public struct IoExit
{
    public const byte In = 0, Out = 1;
    public byte Direction, Size;
    public ushort Port;
    public uint Count;
    public ulong DataOffset;
}

[StructLayout(LayoutKind.Sequential)]
// SAFETY: a kernel ABI struct: fixed buffers have the kernel's sizes, checked by StructLayoutTests.
public unsafe struct MmioExit
{
    public ulong PhysAddr;
    public fixed byte Data[8];
    public uint Len;
    public byte IsWrite;
}

[StructLayout(LayoutKind.Sequential)]
// SAFETY: a kernel ABI struct: fixed buffers have the kernel's sizes, checked by StructLayoutTests.
public unsafe struct InternalExit
{
    public uint Suberror, NData;
    public fixed ulong Data[16];
}

[StructLayout(LayoutKind.Sequential)]
// SAFETY: a kernel ABI struct: fixed buffers have the kernel's sizes, checked by StructLayoutTests.
public unsafe struct SystemEventExit
{
    public uint Type, NData;
    public fixed ulong Data[16];
}
