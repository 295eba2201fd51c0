using System.Runtime.InteropServices;
using Flint.Sys;

namespace Flint.Seccomp;

/// <summary>Seccomp counters for the metrics writer (<c>seccomp.num_faults</c>).</summary>
public static class SeccompMetrics
{
    /// <summary>Bad syscalls intercepted so far. The process exits on the first, so a metrics flush sees this only from
    /// the flush callback (<see cref="SigsysHandler.SetFlushCallback"/>).</summary>
    public static unsafe long NumFaults => SigsysHandler.Data == null ? 0 : Interlocked.Read(ref *(long*)SigsysHandler.Data);
}

/// <summary>
/// The process-wide SIGSYS handler for the filters' <c>"trap"</c> action. It logs
/// <c>Shutting down VM after intercepting a bad syscall (N)</c> (N = si_syscall, offset 24 of siginfo_t) to stderr and
/// to the log fd (<see cref="SetLogFd"/>) with raw write(2), increments <see cref="SeccompMetrics.NumFaults"/>, calls the
/// flush callback if one is set, and exit_group(148).
/// <para>
/// The handler is 168 bytes of x86-64 machine code in an executable page, not managed code: a SIGSYS can land while
/// the faulting thread is in cooperative mode (runtime-internal syscalls, [SuppressGCTransition] P/Invokes), and the
/// runtime fails fast ("attempted to call a UnmanagedCallersOnly method from managed code") when a signal enters
/// managed code there. The code only touches its stack and a small native data block, and makes only write and
/// exit_group, so it is async-signal-safe and works under every filter (which must allow write and exit_group; the
/// default filters do). Source: SigsysHandler.s next to this file.
/// </para>
/// </summary>
public static unsafe class SigsysHandler
{
    public const int ExitCode = 148;
    public const int SIGSYS = 31;
    private const int SA_SIGINFO = 4;

    /// <summary>Offset of si_syscall in siginfo_t for SIGSYS on x86_64 (si_signo, si_errno, si_code, pad, si_call_addr).</summary>
    public const int SiSyscallOffset = 24;

    // Data block layout, shared with the machine code: +0 long fault count, +8 int log fd, +12 byte prefix length,
    // +16 flush callback (void (*)(void)), +24 the message prefix.
    private const int DataCount = 0, DataLogFd = 8, DataPrefixLen = 12, DataFlush = 16, DataPrefix = 24, DataSize = 128;
    private const int ImmOffset = 3;      // the movabs rbx, imm64 operand
    private const int NoopOffset = 0xa7;  // a lone `ret`

    /// <summary>Assembled from SigsysHandler.s (as + objcopy -O binary).</summary>
    private static ReadOnlySpan<byte> Code =>
    [
        0x53, 0x48, 0xbb, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0xf0,
        0x48, 0xff, 0x03, 0x44, 0x8b, 0x46, 0x18, 0x48, 0x81, 0xec, 0x80, 0x00,
        0x00, 0x00, 0x48, 0x8d, 0x73, 0x18, 0x48, 0x89, 0xe7, 0x0f, 0xb6, 0x4b,
        0x0c, 0xfc, 0xf3, 0xa4, 0x44, 0x89, 0xc0, 0x4c, 0x8d, 0x4c, 0x24, 0x78,
        0x4d, 0x89, 0xca, 0xb9, 0x0a, 0x00, 0x00, 0x00, 0x31, 0xd2, 0xf7, 0xf1,
        0x80, 0xc2, 0x30, 0x49, 0xff, 0xc9, 0x41, 0x88, 0x11, 0x85, 0xc0, 0x75,
        0xef, 0x4c, 0x89, 0xce, 0x4c, 0x89, 0xd1, 0x4c, 0x29, 0xc9, 0xf3, 0xa4,
        0xc6, 0x07, 0x29, 0xc6, 0x47, 0x01, 0x0a, 0x48, 0x8d, 0x57, 0x02, 0x48,
        0x29, 0xe2, 0x49, 0x89, 0xd0, 0xb8, 0x01, 0x00, 0x00, 0x00, 0xbf, 0x02,
        0x00, 0x00, 0x00, 0x48, 0x89, 0xe6, 0x0f, 0x05, 0x48, 0x63, 0x7b, 0x08,
        0x85, 0xff, 0x78, 0x12, 0x83, 0xff, 0x02, 0x74, 0x0d, 0xb8, 0x01, 0x00,
        0x00, 0x00, 0x48, 0x89, 0xe6, 0x4c, 0x89, 0xc2, 0x0f, 0x05, 0x48, 0x8b,
        0x43, 0x10, 0x48, 0x85, 0xc0, 0x74, 0x02, 0xff, 0xd0, 0xb8, 0xe7, 0x00,
        0x00, 0x00, 0xbf, 0x94, 0x00, 0x00, 0x00, 0x0f, 0x05, 0x0f, 0x0b, 0xc3,
    ];

    public static ReadOnlySpan<byte> MessagePrefix => "Shutting down VM after intercepting a bad syscall ("u8;

    [StructLayout(LayoutKind.Sequential)]
    private struct SigAction
    {
        public nint Handler;
        public fixed ulong Mask[16];
        public int Flags;
        public nint Restorer;
    }

    [DllImport("libc", SetLastError = true)] private static extern int sigaction(int sig, SigAction* act, SigAction* old);
    [DllImport("libc", SetLastError = true)] private static extern int mprotect(void* addr, nuint len, int prot);
    private const int PROT_EXEC = 4;

    private static readonly Lock s_lock = new();
    internal static byte* Data;
    private static byte* s_code;
    private static bool s_installed;

    /// <summary>Creates the native handler code and data (idempotent; needs mmap and mprotect, so before any filter).</summary>
    public static void Prepare()
    {
        lock (s_lock)
        {
            if (s_code != null) return;
            var data = (byte*)NativeMemory.AlignedAlloc(DataSize, 64);
            new Span<byte>(data, DataSize).Clear();
            *(int*)(data + DataLogFd) = -1;
            data[DataPrefixLen] = (byte)MessagePrefix.Length;
            MessagePrefix.CopyTo(new Span<byte>(data + DataPrefix, DataSize - DataPrefix));

            void* page = Libc.mmap(null, 4096, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_PRIVATE | Libc.MAP_ANONYMOUS, -1, 0);
            if ((nint)page == Libc.MAP_FAILED) throw SysException.Last("mmap (SIGSYS handler)");
            Code.CopyTo(new Span<byte>(page, 4096));
            *(ulong*)((byte*)page + ImmOffset) = (ulong)data;
            if (mprotect(page, 4096, Libc.PROT_READ | PROT_EXEC) < 0) throw SysException.Last("mprotect (SIGSYS handler)");
            Data = data;
            s_code = (byte*)page;
        }
    }

    /// <summary>Installs the SIGSYS handler for the whole process (idempotent). Call it once, before the first filter goes on.</summary>
    public static void Install()
    {
        Prepare();
        lock (s_lock)
        {
            if (s_installed) return;
            var act = new SigAction { Handler = (nint)s_code, Flags = SA_SIGINFO };
            if (sigaction(SIGSYS, &act, null) < 0) throw SysException.Last("sigaction(SIGSYS)");
            s_installed = true;
        }
    }

    /// <summary>
    /// A native signal handler that just returns: for signals whose only job is to interrupt a blocking call
    /// (the vCPU kick). Unlike an [UnmanagedCallersOnly] method it is safe whatever the thread was doing.
    /// </summary>
    public static nint NoopSignalHandler
    {
        get { Prepare(); return (nint)(s_code + NoopOffset); }
    }

    /// <summary>
    /// Installs <see cref="NoopSignalHandler"/> for <paramref name="signal"/> (no SA_RESTART, so blocking calls such as
    /// KVM_RUN return EINTR). Use it for the vCPU kick signal instead of an [UnmanagedCallersOnly] no-op, which fails fast
    /// when the kick lands while the vCPU thread runs managed code.
    /// </summary>
    public static void InstallNoopHandler(int signal)
    {
        var act = new SigAction { Handler = NoopSignalHandler };
        if (sigaction(signal, &act, null) < 0) throw SysException.Last("sigaction");
    }

    /// <summary>Also write the message to this fd (the --log-path file or FIFO); -1 for none.</summary>
    public static void SetLogFd(int fd)
    {
        Prepare();
        Volatile.Write(ref *(int*)(Data + DataLogFd), fd);
    }

    /// <summary>
    /// A native function run after the message and before exit_group (for example one that writes a final metrics line).
    /// It runs in signal context on the faulting thread, under that thread's filter: it must be async-signal-safe, may
    /// only make syscalls the filter allows, and must not enter managed code unless the thread is known to be in
    /// preemptive mode. Null (the default) for none; Flint registers none.
    /// </summary>
    public static void SetFlushCallback(delegate* unmanaged<void> callback)
    {
        Prepare();
        Volatile.Write(ref *(nint*)(Data + DataFlush), (nint)callback);
    }
}
