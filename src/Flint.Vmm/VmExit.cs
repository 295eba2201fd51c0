using Flint.Sys;

namespace Flint.Vmm;

/// <summary>
/// How the VM ended, decided once by whichever thread sees the end first (a vCPU on reset/shutdown/error,
/// the API on a request); the main thread waits on <see cref="Event"/>.
/// </summary>
public sealed class VmExit : IDisposable
{
    private int _set;

    public EventFd Event { get; } = new();
    public int ExitCode { get; private set; }
    public string Reason { get; private set; } = "";
    public bool IsRequested => Volatile.Read(ref _set) != 0;

    /// <summary>Records the first exit request; later ones are ignored. Returns whether this one won.</summary>
    public bool Request(int exitCode, string reason)
    {
        if (Interlocked.Exchange(ref _set, 1) != 0) return false;
        ExitCode = exitCode;
        Reason = reason;
        Event.Write(1);
        return true;
    }

    public void Dispose() => Event.Dispose();
}

/// <summary>Process exit codes, as Firecracker's.</summary>
public static class ExitCodes
{
    public const int Ok = 0, GenericError = 1, BadSyscall = 148, SigBus = 149, SigSegv = 150, SigXfsz = 151,
        BadConfiguration = 152, ArgParsing = 153, SigXcpu = 154, SigPipe = 155, SigHup = 156, SigIll = 157;
}
