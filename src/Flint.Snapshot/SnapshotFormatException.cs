namespace Flint.Snapshot;

/// <summary>
/// A state file that cannot be loaded: truncated, corrupt (CRC), another format version or architecture, or a
/// section that does not parse. The message is meant for the user (Firecracker's SnapshotError texts where it has
/// one) and never carries a .NET exception text.
/// </summary>
public sealed class SnapshotFormatException(string message) : Exception(message);
