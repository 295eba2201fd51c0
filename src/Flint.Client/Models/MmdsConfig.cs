namespace Flint.Client.Models;

/// <summary>PUT /mmds/config: the metadata service's version, address and interfaces (swagger <c>MmdsConfig</c>). Pre-boot only.</summary>
public sealed record MmdsConfig
{
    /// <summary>"V1" (default) or "V2" (see <see cref="MmdsVersions"/>).</summary>
    public string? Version { get; init; }

    /// <summary>Ids of the network interfaces whose guest traffic to <see cref="Ipv4Address"/> reaches the MMDS.</summary>
    public IReadOnlyList<string> NetworkInterfaces { get; init; } = [];

    /// <summary>Link-local IPv4 address of the MMDS; default 169.254.169.254.</summary>
    public string? Ipv4Address { get; init; }

    /// <summary>Answer "text/plain" whatever the Accept header, as EC2 IMDS does. Default false.</summary>
    public bool? ImdsCompat { get; init; }
}

/// <summary>Values of <see cref="MmdsConfig.Version"/>.</summary>
public static class MmdsVersions
{
    /// <summary>MMDS version 1 (plain GET requests).</summary>
    public const string V1 = "V1";

    /// <summary>MMDS version 2 (session tokens).</summary>
    public const string V2 = "V2";
}
