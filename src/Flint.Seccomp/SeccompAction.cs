namespace Flint.Seccomp;

public enum SeccompActionKind { Allow, Trap, KillThread, KillProcess, Log, Errno, Trace }

/// <summary>What the kernel does when a filter decides: the JSON forms are "allow", "trap", "kill_thread",
/// "kill_process" ("kill" is an alias), "log", {"errno": N} (or "errno(N)"), {"trace": N}.</summary>
public readonly record struct SeccompAction(SeccompActionKind Kind, ushort Data = 0)
{
    public static readonly SeccompAction Allow = new(SeccompActionKind.Allow);
    public static readonly SeccompAction Trap = new(SeccompActionKind.Trap);
    public static readonly SeccompAction KillThread = new(SeccompActionKind.KillThread);
    public static readonly SeccompAction KillProcess = new(SeccompActionKind.KillProcess);
    public static readonly SeccompAction Log = new(SeccompActionKind.Log);
    public static SeccompAction Errno(ushort errno) => new(SeccompActionKind.Errno, errno);

    /// <summary>The 32-bit value a BPF RET instruction returns for this action.</summary>
    public uint ReturnValue => Kind switch
    {
        SeccompActionKind.Allow => Bpf.SECCOMP_RET_ALLOW,
        SeccompActionKind.Trap => Bpf.SECCOMP_RET_TRAP,
        SeccompActionKind.KillThread => Bpf.SECCOMP_RET_KILL_THREAD,
        SeccompActionKind.KillProcess => Bpf.SECCOMP_RET_KILL_PROCESS,
        SeccompActionKind.Log => Bpf.SECCOMP_RET_LOG,
        SeccompActionKind.Errno => Bpf.SECCOMP_RET_ERRNO | Data,
        SeccompActionKind.Trace => Bpf.SECCOMP_RET_TRACE | Data,
        _ => throw new ArgumentOutOfRangeException(nameof(Kind)),
    };

    public override string ToString() => Kind switch
    {
        SeccompActionKind.Errno => $"errno({Data})",
        SeccompActionKind.Trace => $"trace({Data})",
        _ => Kind.ToString(),
    };
}
