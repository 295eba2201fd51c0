using System.Runtime.InteropServices;

namespace Flint.Sys;

/// <summary>glibc's struct sigaction on x86-64 (handler, 1024-bit mask, flags, restorer), for the native handlers here.</summary>
[StructLayout(LayoutKind.Sequential)]
// SAFETY: the C struct sigaction: a handler function pointer (a static method) and a fixed-size mask.
internal unsafe struct SigAction
{
    public nint Handler;
    public fixed ulong Mask[16];
    public int Flags;
    public nint Restorer;

    public const int SA_SIGINFO = 4, SA_RESTART = 0x10000000;

    [DllImport("libc", EntryPoint = "sigaction", SetLastError = true)]
    private static extern int sigaction(int sig, SigAction* act, SigAction* old);

    /// <summary>Installs <paramref name="act"/> for <paramref name="signal"/>; throws on failure.</summary>
    public static void Install(int signal, in SigAction act)
    {
        fixed (SigAction* a = &act)
            if (sigaction(signal, a, null) < 0) throw SysException.Last($"sigaction({signal})");
    }

    /// <summary>The action now installed for <paramref name="signal"/>.</summary>
    public static SigAction Query(int signal)
    {
        SigAction old;
        if (sigaction(signal, null, &old) < 0) throw SysException.Last($"sigaction({signal}, query)");
        return old;
    }
}
