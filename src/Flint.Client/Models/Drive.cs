namespace Flint.Client.Models;

/// <summary>PUT /drives/{drive_id}: a block device (swagger <c>Drive</c>). Pre-boot only.</summary>
public sealed record Drive
{
    /// <summary>The drive's id (also the path parameter).</summary>
    public string DriveId { get; init; } = "";

    /// <summary>Partition UUID of the root partition; used only when <see cref="IsRootDevice"/> is set.</summary>
    public string? Partuuid { get; init; }

    /// <summary>Whether the guest boots from this drive.</summary>
    public bool IsRootDevice { get; init; }

    /// <summary>"Unsafe" (default) or "Writeback" (see <see cref="CacheTypes"/>).</summary>
    public string? CacheType { get; init; }

    /// <summary>Whether the guest sees the drive read-only (virtio-block only).</summary>
    public bool? IsReadOnly { get; init; }

    /// <summary>Host path of the backing file (virtio-block only).</summary>
    public string? PathOnHost { get; init; }

    /// <summary>Optional I/O rate limiter (virtio-block only).</summary>
    public RateLimiter? RateLimiter { get; init; }

    /// <summary>"Sync" (default) or "Async" (see <see cref="IoEngines"/>; virtio-block only).</summary>
    public string? IoEngine { get; init; }

    /// <summary>Socket of a vhost-user-block backend (vhost-user-block only).</summary>
    public string? Socket { get; init; }
}

/// <summary>PATCH /drives/{drive_id}: a new backing file or rate limiter (swagger <c>PartialDrive</c>). Post-boot only.</summary>
public sealed record PartialDrive
{
    /// <summary>The drive's id (also the path parameter).</summary>
    public string DriveId { get; init; } = "";

    /// <summary>New host path of the backing file.</summary>
    public string? PathOnHost { get; init; }

    /// <summary>New rate limiter.</summary>
    public RateLimiter? RateLimiter { get; init; }
}

/// <summary>Values of <see cref="Drive.CacheType"/>.</summary>
public static class CacheTypes
{
    /// <summary>No flush offered to the guest (the default).</summary>
    public const string Unsafe = "Unsafe";

    /// <summary>Flush offered; the host syncs the file on flush.</summary>
    public const string Writeback = "Writeback";
}

/// <summary>Values of <see cref="Drive.IoEngine"/>.</summary>
public static class IoEngines
{
    /// <summary>Synchronous I/O (the default).</summary>
    public const string Sync = "Sync";

    /// <summary>io_uring based asynchronous I/O.</summary>
    public const string Async = "Async";
}
