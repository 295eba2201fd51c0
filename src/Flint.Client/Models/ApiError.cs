namespace Flint.Client.Models;

/// <summary>The body of every API error (swagger <c>Error</c>): <c>{"fault_message": "..."}</c>.</summary>
public sealed record ApiError
{
    /// <summary>What went wrong, as the VMM words it.</summary>
    public string? FaultMessage { get; init; }
}
