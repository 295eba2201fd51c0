using System.Text.Json.Serialization;

namespace Flint.Client.Models;

/// <summary>GET /version (swagger <c>FirecrackerVersion</c>).</summary>
public sealed record FirecrackerVersion
{
    /// <summary>The Firecracker (API) version the VMM implements, e.g. "1.17.0-dev".</summary>
    [JsonPropertyName("firecracker_version")]
    public string? Version { get; init; }
}
