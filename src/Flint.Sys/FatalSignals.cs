using System.Runtime.InteropServices;
using System.Text;

namespace Flint.Sys;

/// <summary>
/// Firecracker's fatal-signal policy for the signals that end the VMM from wherever they land: SIGSYS (a seccomp
/// violation, 148), SIGBUS (149), SIGSEGV (150), SIGILL (157), SIGXFSZ (151), SIGXCPU (154) and SIGHUP (156). Each logs
/// <c>Shutting down VM after intercepting a bad syscall (N)</c> or <c>... intercepting signal S, code C.</c> to stderr
/// and the log fd, counts itself, makes the notify eventfd readable (<see cref="SetNotifyFd"/>: flint's API thread and
/// main event loop watch it, and one of them flushes the metrics and exits with the code), and exits by itself if
/// that has not happened within 2 s (at once when the same signal comes a second time: the watcher's own metrics
/// flush can raise SIGXFSZ again).
/// <para>
/// The handlers are native machine code (FatalSignalHandler.s next to this file), one copy per signal, not managed
/// code: a fault or a bad syscall can land while the thread is in cooperative mode, where entering managed code from
/// a signal fails fast. They touch only their stack and their data block, and make only write, nanosleep and
/// exit_group, which every seccomp filter allows.
/// </para>
/// <para>
/// SIGSEGV is also how the .NET runtime turns a null dereference in managed code into a NullReferenceException, so
/// the handler goes on to the runtime's handler for a hardware fault in the first 64 KiB (the null area) and handles
/// everything else: faults elsewhere and signals sent with kill. SIGBUS and SIGILL are not used by the runtime.
/// </para>
/// </summary>
// SAFETY: installs handlers as unmanaged function pointers (static, never collected) with stack-allocated sigaction structs.
public static unsafe class FatalSignals
{
    public const int SIGHUP = 1, SIGILL = 4, SIGBUS = 7, SIGSEGV = 11, SIGXCPU = 24, SIGXFSZ = 25, SIGSYS = 31;

    /// <summary>Assembled from FatalSignalHandler.s (as + objcopy -O binary).</summary>
    private static ReadOnlySpan<byte> Code =>
    [
        0x48, 0xb8, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0x4c, 0x8b, 0x58, 0x10, 0x4d, 0x85,
        0xdb, 0x74, 0x14, 0x8b, 0x4e, 0x08, 0x85, 0xc9, 0x7e, 0x0d, 0x48, 0x81, 0x7e, 0x10, 0x00, 0x00,
        0x01, 0x00, 0x73, 0x03, 0x41, 0xff, 0xe3, 0x53, 0x48, 0x89, 0xc3, 0x41, 0xbc, 0x01, 0x00, 0x00,
        0x00, 0xf0, 0x4c, 0x0f, 0xc1, 0x23, 0x0f, 0xb6, 0x43, 0x0d, 0x44, 0x8b, 0x04, 0x06, 0x48, 0x81,
        0xec, 0x80, 0x00, 0x00, 0x00, 0x48, 0x8d, 0x73, 0x20, 0x48, 0x89, 0xe7, 0x0f, 0xb6, 0x4b, 0x0c,
        0xfc, 0xf3, 0xa4, 0x44, 0x89, 0xc0, 0x85, 0xc0, 0x79, 0x08, 0xf7, 0xd8, 0xc6, 0x07, 0x2d, 0x48,
        0xff, 0xc7, 0x4c, 0x8d, 0x4c, 0x24, 0x78, 0x4d, 0x89, 0xca, 0xb9, 0x0a, 0x00, 0x00, 0x00, 0x31,
        0xd2, 0xf7, 0xf1, 0x80, 0xc2, 0x30, 0x49, 0xff, 0xc9, 0x41, 0x88, 0x11, 0x85, 0xc0, 0x75, 0xef,
        0x4c, 0x89, 0xce, 0x4c, 0x89, 0xd1, 0x4c, 0x29, 0xc9, 0xf3, 0xa4, 0xc6, 0x07, 0x29, 0x80, 0x7b,
        0x0e, 0x00, 0x74, 0x03, 0xc6, 0x07, 0x2e, 0xc6, 0x47, 0x01, 0x0a, 0x48, 0x8d, 0x57, 0x02, 0x48,
        0x29, 0xe2, 0x49, 0x89, 0xd0, 0xb8, 0x01, 0x00, 0x00, 0x00, 0xbf, 0x02, 0x00, 0x00, 0x00, 0x48,
        0x89, 0xe6, 0x0f, 0x05, 0x48, 0x63, 0x7b, 0x08, 0x85, 0xff, 0x78, 0x12, 0x83, 0xff, 0x02, 0x74,
        0x0d, 0xb8, 0x01, 0x00, 0x00, 0x00, 0x48, 0x89, 0xe6, 0x4c, 0x89, 0xc2, 0x0f, 0x05, 0x4d, 0x85,
        0xe4, 0x75, 0x3c, 0x48, 0x63, 0x7b, 0x18, 0x85, 0xff, 0x78, 0x34, 0x48, 0xc7, 0x04, 0x24, 0x01,
        0x00, 0x00, 0x00, 0xb8, 0x01, 0x00, 0x00, 0x00, 0x48, 0x89, 0xe6, 0xba, 0x08, 0x00, 0x00, 0x00,
        0x0f, 0x05, 0x48, 0xc7, 0x04, 0x24, 0x02, 0x00, 0x00, 0x00, 0x48, 0xc7, 0x44, 0x24, 0x08, 0x00,
        0x00, 0x00, 0x00, 0xb8, 0x23, 0x00, 0x00, 0x00, 0x48, 0x89, 0xe7, 0x31, 0xf6, 0x0f, 0x05, 0x0f,
        0xb6, 0x7b, 0x0f, 0xb8, 0xe7, 0x00, 0x00, 0x00, 0x0f, 0x05, 0x0f, 0x0b, 0xc3,
    ];

    private const int ImmOffset = 2, NoopOffset = 0x11c, Slot = 0x120;
    // Data block layout, shared with the machine code.
    private const int DCount = 0, DLogFd = 8, DPrefixLen = 12, DInfoOffset = 13, DSuffix = 14, DExitCode = 15,
        DChain = 16, DNotifyFd = 24, DPrefix = 32, DataSize = 128;
    private const int SiCodeOffset = 8, SiSyscallOffset = 24;

    private sealed record Spec(int Signal, string Prefix, int InfoOffset, bool Dot, int ExitCode, bool ChainToRuntime);

    private static readonly Spec[] Specs =
    [
        new(SIGSYS, "Shutting down VM after intercepting a bad syscall (", SiSyscallOffset, false, 148, false),
        new(SIGBUS, "Shutting down VM after intercepting signal 7, code ", SiCodeOffset, true, 149, false),
        new(SIGSEGV, "Shutting down VM after intercepting signal 11, code ", SiCodeOffset, true, 150, true),
        new(SIGILL, "Shutting down VM after intercepting signal 4, code ", SiCodeOffset, true, 157, false),
        // Resource limits and hang-up: RLIMIT_FSIZE (a log/metrics file grew past it: the kernel sends SIGXFSZ with
        // SI_USER, "code 0"), RLIMIT_CPU, the controlling terminal gone. Native like the others: no runtime signal
        // thread (it would run unfiltered), and the writing thread never sees the EFBIG that follows.
        new(SIGXFSZ, "Shutting down VM after intercepting signal 25, code ", SiCodeOffset, true, 151, false),
        new(SIGXCPU, "Shutting down VM after intercepting signal 24, code ", SiCodeOffset, true, 154, false),
        new(SIGHUP, "Shutting down VM after intercepting signal 1, code ", SiCodeOffset, true, 156, false),
    ];

    private static readonly Lock s_lock = new();
    private static byte* s_code;
    private static byte*[]? s_data;

    private static int IndexOf(int signal)
    {
        for (int i = 0; i < Specs.Length; i++) if (Specs[i].Signal == signal) return i;
        throw new ArgumentOutOfRangeException(nameof(signal), signal, "not a fatal signal Flint handles");
    }

    /// <summary>Writes the handler code and data blocks (idempotent; mmap and mprotect, so before any filter).</summary>
    public static void Prepare()
    {
        lock (s_lock)
        {
            if (s_code != null) return;
            var page = (byte*)Libc.mmap(null, 4096, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_PRIVATE | Libc.MAP_ANONYMOUS, -1, 0);
            if ((nint)page == Libc.MAP_FAILED) throw SysException.Last("mmap (fatal signal handlers)");
            var data = new byte*[Specs.Length];
            for (int i = 0; i < Specs.Length; i++)
            {
                var s = Specs[i];
                var d = (byte*)NativeMemory.AlignedAlloc(DataSize, 64);
                new Span<byte>(d, DataSize).Clear();
                *(int*)(d + DLogFd) = -1;
                *(int*)(d + DNotifyFd) = -1;
                int n = Encoding.ASCII.GetBytes(s.Prefix, new Span<byte>(d + DPrefix, DataSize - DPrefix));
                d[DPrefixLen] = (byte)n;
                d[DInfoOffset] = (byte)s.InfoOffset;
                d[DSuffix] = (byte)(s.Dot ? 1 : 0);
                d[DExitCode] = (byte)s.ExitCode;
                data[i] = d;
                Code.CopyTo(new Span<byte>(page + i * Slot, Slot));
                *(ulong*)(page + i * Slot + ImmOffset) = (ulong)d;
            }
            if (Libc.mprotect(page, 4096, Libc.PROT_READ | Libc.PROT_EXEC) < 0) throw SysException.Last("mprotect (fatal signal handlers)");
            s_data = data;
            s_code = page;
        }
    }

    /// <summary>Installs the handler for <paramref name="signal"/> (one of the signals above). For SIGSEGV the
    /// runtime's handler found in place becomes the one null-area faults go on to, with its flags and mask kept.</summary>
    public static void Install(int signal)
    {
        Prepare();
        int i = IndexOf(signal);
        lock (s_lock)
        {
            var old = SigAction.Query(signal);
            var act = new SigAction { Handler = (nint)(s_code + i * Slot), Flags = SigAction.SA_SIGINFO };
            if (Specs[i].ChainToRuntime && old.Handler > 1 && (old.Flags & SigAction.SA_SIGINFO) != 0)
            {
                if (old.Handler == act.Handler) return; // already ours
                *(nint*)(s_data![i] + DChain) = old.Handler;
                act.Flags = old.Flags;
                for (int m = 0; m < 16; m++) act.Mask[m] = old.Mask[m];
            }
            SigAction.Install(signal, act);
        }
    }

    /// <summary>How many times <paramref name="signal"/> was handled (the process exits on the first).</summary>
    public static long Count(int signal)
    {
        if (s_data == null) return 0;
        return Interlocked.Read(ref *(long*)s_data[IndexOf(signal)]);
    }

    /// <summary>The exit code of the first fatal signal handled, or null if none was.</summary>
    public static int? FiredExitCode()
    {
        if (s_data == null) return null;
        for (int i = 0; i < Specs.Length; i++)
            if (Interlocked.Read(ref *(long*)s_data[i]) > 0) return Specs[i].ExitCode;
        return null;
    }

    /// <summary>Also write the messages to this fd (the log file or FIFO); -1 for none.</summary>
    public static void SetLogFd(int fd) => SetAll(DLogFd, fd);

    /// <summary>An eventfd the handlers add 1 to before waiting for the process to exit; -1 for none.</summary>
    public static void SetNotifyFd(int fd) => SetAll(DNotifyFd, fd);

    private static void SetAll(int offset, int value)
    {
        Prepare();
        foreach (var d in s_data!) Volatile.Write(ref *(int*)(d + offset), value);
    }

    /// <summary>A native handler that just returns: for signals whose only job is to interrupt a blocking call.</summary>
    public static nint NoopHandler
    {
        get { Prepare(); return (nint)(s_code + NoopOffset); }
    }
}
