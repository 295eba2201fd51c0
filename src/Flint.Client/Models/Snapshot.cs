using System.Text.Json.Serialization;

namespace Flint.Client.Models;

/// <summary>PUT /snapshot/create (swagger <c>SnapshotCreateParams</c>). The microVM must be paused.</summary>
public sealed record SnapshotCreateParams
{
    /// <summary>File that will hold the guest memory.</summary>
    public string MemFilePath { get; init; } = "";

    /// <summary>File that will hold the microVM state.</summary>
    public string SnapshotPath { get; init; } = "";

    /// <summary>Full (default) or Diff.</summary>
    public SnapshotType? SnapshotType { get; init; }
}

/// <summary>The kinds of snapshot PUT /snapshot/create makes.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<SnapshotType>))]
public enum SnapshotType
{
    /// <summary>All of guest memory.</summary>
    Full,

    /// <summary>Only the memory dirtied since the previous snapshot (needs dirty page tracking).</summary>
    Diff,
}

/// <summary>
/// PUT /snapshot/load (swagger <c>SnapshotLoadParams</c>). Only on a fresh process (nothing configured but the logger
/// and metrics). Exactly one of <see cref="MemFilePath"/> and <see cref="MemBackend"/> must be set.
/// </summary>
public sealed record SnapshotLoadParams
{
    /// <summary>File holding the microVM state.</summary>
    public string SnapshotPath { get; init; } = "";

    /// <summary>Deprecated: file holding the guest memory. Use <see cref="MemBackend"/>.</summary>
    public string? MemFilePath { get; init; }

    /// <summary>Where guest memory comes from: a file, or a userfaultfd handler.</summary>
    public MemoryBackend? MemBackend { get; init; }

    /// <summary>Deprecated spelling of <see cref="TrackDirtyPages"/>.</summary>
    public bool? EnableDiffSnapshots { get; init; }

    /// <summary>Enable dirty page tracking (for diff snapshots of the restored VM).</summary>
    public bool? TrackDirtyPages { get; init; }

    /// <summary>Resume the VM once loaded.</summary>
    public bool? ResumeVm { get; init; }

    /// <summary>New host TAP devices for network interfaces.</summary>
    public IReadOnlyList<NetworkOverride>? NetworkOverrides { get; init; }

    /// <summary>A new Unix socket path for the vsock device.</summary>
    public VsockOverride? VsockOverride { get; init; }

    /// <summary>x86_64: advance kvmclock by the wall-clock time since the snapshot (KVM_CLOCK_REALTIME).</summary>
    public bool? ClockRealtime { get; init; }

    /// <summary>"Snapshot" (default), "None", "Transparent" or "2M" (see <see cref="Models.HugePages"/>).</summary>
    public string? HugePages { get; init; }
}

/// <summary>Where restored guest memory comes from (swagger <c>MemoryBackend</c>).</summary>
public sealed record MemoryBackend
{
    /// <summary>File or Uffd.</summary>
    public MemoryBackendType BackendType { get; init; }

    /// <summary>The memory file (File) or the socket of the page-fault handler (Uffd).</summary>
    public string BackendPath { get; init; } = "";
}

/// <summary>The kinds of <see cref="MemoryBackend"/>.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<MemoryBackendType>))]
public enum MemoryBackendType
{
    /// <summary>Guest memory is mapped from a file.</summary>
    File,

    /// <summary>A process listening on a Unix socket serves page faults through userfaultfd.</summary>
    Uffd,
}

/// <summary>A new host TAP device for one interface on restore (swagger <c>NetworkOverride</c>).</summary>
public sealed record NetworkOverride
{
    /// <summary>The interface to change.</summary>
    public string IfaceId { get; init; } = "";

    /// <summary>Its new host TAP device.</summary>
    public string HostDevName { get; init; } = "";
}

/// <summary>A new vsock Unix socket path on restore (swagger <c>VsockOverride</c>).</summary>
public sealed record VsockOverride
{
    /// <summary>The new path.</summary>
    public string UdsPath { get; init; } = "";
}
