namespace Flint.Devices.Virtio.VhostUser;

/// <summary>
/// Firecracker's VhostUserDeviceMetrics (vhost_user_metrics.rs), reported as <c>vhost_user_block_{drive_id}</c>:
/// two counters and three durations (microseconds, stored: the last value, not a sum).
/// </summary>
public sealed class VhostUserMetrics
{
    public long ActivateFails;
    /// <summary>Declared by Firecracker and never incremented there; 0 here too.</summary>
    public long CfgFails;
    public long InitTimeUs;
    public long ActivateTimeUs;
    public long ConfigChangeTimeUs;

    public (string Name, long Value)[] Snapshot() =>
    [
        ("activate_fails", Interlocked.Read(ref ActivateFails)),
        ("cfg_fails", Interlocked.Read(ref CfgFails)),
        ("init_time_us", Interlocked.Read(ref InitTimeUs)),
        ("activate_time_us", Interlocked.Read(ref ActivateTimeUs)),
        ("config_change_time_us", Interlocked.Read(ref ConfigChangeTimeUs)),
    ];
}
