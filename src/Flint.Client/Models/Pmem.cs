namespace Flint.Client.Models;

/// <summary>PUT /pmem/{id}: a virtio-pmem device (swagger <c>Pmem</c>). Pre-boot only.</summary>
public sealed record Pmem
{
    /// <summary>The device's id (also the path parameter).</summary>
    public string Id { get; init; } = "";

    /// <summary>Host path of the backing file.</summary>
    public string PathOnHost { get; init; } = "";

    /// <summary>Whether the guest boots from this device.</summary>
    public bool? RootDevice { get; init; }

    /// <summary>Whether the backing file is mapped read-only.</summary>
    public bool? ReadOnly { get; init; }

    /// <summary>Optional rate limiter.</summary>
    public RateLimiter? RateLimiter { get; init; }
}

/// <summary>PATCH /pmem/{id}: a new rate limiter (swagger <c>PartialPmem</c>). Post-boot only.</summary>
public sealed record PartialPmem
{
    /// <summary>The device's id (also the path parameter).</summary>
    public string Id { get; init; } = "";

    /// <summary>New rate limiter.</summary>
    public RateLimiter? RateLimiter { get; init; }
}
