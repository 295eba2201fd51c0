namespace Flint.Client.Models;

/// <summary>GET /: general information about the microVM instance (swagger <c>InstanceInfo</c>).</summary>
public sealed record InstanceInfo
{
    /// <summary>Application name (Firecracker reports "Firecracker").</summary>
    public string? AppName { get; init; }

    /// <summary>The microVM / instance id (the process's <c>--id</c>).</summary>
    public string? Id { get; init; }

    /// <summary>"Not started", "Running" or "Paused" (see <see cref="InstanceStates"/>).</summary>
    public string? State { get; init; }

    /// <summary>The VMM's build version.</summary>
    public string? VmmVersion { get; init; }
}

/// <summary>
/// The values of <see cref="InstanceInfo.State"/>. Kept as strings rather than an enum so that a state a newer VMM
/// adds does not make the whole answer unreadable.
/// </summary>
public static class InstanceStates
{
    /// <summary>Configured (or not) but not started yet.</summary>
    public const string NotStarted = "Not started";

    /// <summary>The guest is running.</summary>
    public const string Running = "Running";

    /// <summary>The guest's vCPUs are paused (PATCH /vm).</summary>
    public const string Paused = "Paused";
}
