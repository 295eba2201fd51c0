using System.Text.Json.Serialization;

namespace Flint.Client.Models;

/// <summary>PUT /actions: a synchronous action (swagger <c>InstanceActionInfo</c>).</summary>
public sealed record InstanceActionInfo
{
    /// <summary>The action to run.</summary>
    public InstanceActionType ActionType { get; init; }
}

/// <summary>The actions PUT /actions accepts.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<InstanceActionType>))]
public enum InstanceActionType
{
    /// <summary>Writes the metrics now (to the path set with PUT /metrics).</summary>
    FlushMetrics,

    /// <summary>Boots the configured microVM.</summary>
    InstanceStart,

    /// <summary>Sends Ctrl+Alt+Del to the guest (x86_64: through the i8042 controller).</summary>
    SendCtrlAltDel,
}
