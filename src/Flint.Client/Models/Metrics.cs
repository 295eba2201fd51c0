namespace Flint.Client.Models;

/// <summary>PUT /metrics: where the JSON metrics go (swagger <c>Metrics</c>). Can be set once.</summary>
public sealed record Metrics
{
    /// <summary>Named pipe or file the JSON metrics lines are flushed to.</summary>
    public string MetricsPath { get; init; } = "";

    /// <summary>Whether each line carries the instance id as a top-level "id" field. Default false.</summary>
    public bool? EmitId { get; init; }

    /// <summary>Operator-defined pairs emitted under a top-level "properties" field on each line.</summary>
    public IReadOnlyDictionary<string, string>? Properties { get; init; }
}
