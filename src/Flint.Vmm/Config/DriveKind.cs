namespace Flint.Vmm.Config;

/// <summary>Which block device a drive's fields describe (Firecracker's Block::new tries the two configs in turn).</summary>
public enum DriveBackend { Invalid, Virtio, VhostUser }

/// <summary>
/// Firecracker's VirtioBlockConfig / VhostUserBlockConfig try_from rules: a virtio drive has path_on_host and no
/// socket; a vhost-user drive has a socket and none of is_read_only, path_on_host, rate_limiter, io_engine (those
/// belong to the backend). Anything else is BlockError::InvalidBlockConfig.
/// </summary>
public static class DriveKind
{
    /// <summary>DriveError::CreateBlockDevice(BlockError::InvalidBlockConfig).</summary>
    public const string InvalidConfig = "Unable to create the virtio block device: Invalid block config.";

    public static DriveBackend Of(DriveConfig d)
    {
        if (d.PathOnHost != null && d.Socket == null) return DriveBackend.Virtio;
        bool hasLimiter = d.RateLimiter is { ValueKind: not System.Text.Json.JsonValueKind.Null };
        if (d.Socket != null && d.IsReadOnly == null && d.PathOnHost == null && !hasLimiter && d.IoEngine == null)
            return DriveBackend.VhostUser;
        return DriveBackend.Invalid;
    }
}
