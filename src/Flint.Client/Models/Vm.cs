using System.Text.Json.Serialization;

namespace Flint.Client.Models;

/// <summary>PATCH /vm: the requested microVM state (swagger <c>Vm</c>).</summary>
public sealed record Vm
{
    /// <summary>Paused or Resumed.</summary>
    public VmState State { get; init; }
}

/// <summary>The states PATCH /vm accepts.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<VmState>))]
public enum VmState
{
    /// <summary>Stop the vCPUs (for example before PUT /snapshot/create).</summary>
    Paused,

    /// <summary>Run the vCPUs again.</summary>
    Resumed,
}
