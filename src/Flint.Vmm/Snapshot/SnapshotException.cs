namespace Flint.Vmm.Snapshot;

/// <summary>
/// A snapshot create or load that failed, with the whole Firecracker-style fault message ("Create snapshot error:
/// ...", "Load snapshot error: ..."). <see cref="Fatal"/>: the load failed after it had started building the VM, so
/// the process is left half-restored and must end after answering, as Firecracker's does.
/// </summary>
public sealed class SnapshotException(string message, bool fatal = false) : Exception(message)
{
    public bool Fatal { get; } = fatal;
}
