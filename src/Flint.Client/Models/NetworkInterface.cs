namespace Flint.Client.Models;

/// <summary>PUT /network-interfaces/{iface_id}: a virtio-net device on a host TAP (swagger <c>NetworkInterface</c>). Pre-boot only.</summary>
public sealed record NetworkInterface
{
    /// <summary>The interface's id (also the path parameter).</summary>
    public string IfaceId { get; init; } = "";

    /// <summary>Name of the host TAP device.</summary>
    public string HostDevName { get; init; } = "";

    /// <summary>The guest's MAC address ("06:00:AC:10:00:02"); the guest picks one when absent.</summary>
    public string? GuestMac { get; init; }

    /// <summary>MTU advertised to the guest (68 to 65535); not advertised when absent.</summary>
    public int? Mtu { get; init; }

    /// <summary>Rate limiter on the guest's receive path.</summary>
    public RateLimiter? RxRateLimiter { get; init; }

    /// <summary>Rate limiter on the guest's transmit path.</summary>
    public RateLimiter? TxRateLimiter { get; init; }
}

/// <summary>PATCH /network-interfaces/{iface_id}: new rate limiters (swagger <c>PartialNetworkInterface</c>). Post-boot only.</summary>
public sealed record PartialNetworkInterface
{
    /// <summary>The interface's id (also the path parameter).</summary>
    public string IfaceId { get; init; } = "";

    /// <summary>New receive rate limiter.</summary>
    public RateLimiter? RxRateLimiter { get; init; }

    /// <summary>New transmit rate limiter.</summary>
    public RateLimiter? TxRateLimiter { get; init; }
}
