namespace Flint.Client.Models;

/// <summary>
/// PUT /vsock: a virtio-vsock device proxied to host Unix sockets (swagger <c>Vsock</c>). Pre-boot only. Host-initiated
/// connections go to <see cref="UdsPath"/> ("CONNECT port\n"); guest-initiated ones to "<see cref="UdsPath"/>_PORT".
/// </summary>
public sealed record Vsock
{
    /// <summary>The guest's context id (3 or more).</summary>
    public uint GuestCid { get; init; }

    /// <summary>Host Unix socket the VMM listens on.</summary>
    public string UdsPath { get; init; } = "";

    /// <summary>Deprecated id.</summary>
    public string? VsockId { get; init; }
}
