namespace Flint.Pool;

/// <summary>
/// Where a slot's files are, on the host and as the jailed flint sees them. Every slot of every function uses the
/// same jail-relative paths, so a snapshot taken in one slot (whose config names /rootfs.ext4 and /run/v.sock)
/// restores in any other.
/// </summary>
public sealed class JailLayout(PoolOptions options, string slotId)
{
    public const string ApiSock = "/run/api.sock";
    public const string VsockPath = "/run/v.sock";
    public const string Kernel = "/vmlinux";
    public const string Rootfs = "/rootfs.ext4";
    public const string SnapshotState = "/snapshot.state";
    public const string SnapshotMem = "/snapshot.mem";
    public const string MetricsFile = "/metrics.json";

    public string SlotId { get; } = slotId;
    /// <summary>flint-jailer's &lt;chroot-base&gt;/&lt;exec name&gt;/&lt;id&gt;: removed whole when the slot stops.</summary>
    public string JailDir { get; } = Path.Combine(options.JailsDir, "flint", slotId);
    public string Root => Path.Combine(JailDir, "root");

    public string Host(string jailPath) => Root + jailPath;

    /// <summary>The longest host path a slot uses (a Unix socket path must fit in 107 bytes).</summary>
    public static int LongestSocketPath(PoolOptions options, int slotIdLength) =>
        Path.Combine(options.JailsDir, "flint", new string('x', slotIdLength), "root").Length + VsockPath.Length;
}
