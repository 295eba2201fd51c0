namespace Flint.Client.Models;

/// <summary>PUT /serial: where the serial console's output goes (swagger <c>SerialDevice</c>).</summary>
public sealed record SerialDevice
{
    /// <summary>File or named pipe on the host that receives the serial output.</summary>
    public string? SerialOutPath { get; init; }

    /// <summary>Optional bandwidth limit on serial output; bytes past it are dropped and counted.</summary>
    public TokenBucket? RateLimiter { get; init; }
}
