namespace Flint.Pool;

/// <summary>
/// One warm VM that serves one invocation at a time. Implementations: <see cref="JailedSlot"/> (a jailed flint
/// process), and fakes in the tests. The pool never calls <see cref="InvokeAsync"/> twice at once on a slot.
/// </summary>
public interface ISlot : IAsyncDisposable
{
    string Id { get; }
    /// <summary>The VMM's pid, or 0 where there is no process (fakes).</summary>
    int Pid { get; }
    /// <summary>Completes when the slot's VM is gone (process exited); never faults.</summary>
    Task Exited { get; }

    /// <summary>
    /// Runs one invocation within <paramref name="timeout"/>. Throws <see cref="AgentException"/> for anything but a
    /// RESULT (timeout, closed connection, garbage, ERROR); the pool then retires the slot.
    /// </summary>
    Task<InvokeResult> InvokeAsync(string invocationId, ReadOnlyMemory<byte> payload, TimeSpan timeout, CancellationToken ct);

    /// <summary>Flint's own JSON metrics of this slot's VMM (its latest line), or null where there are none.</summary>
    Task<string?> ReadVmmMetricsAsync(CancellationToken ct);
}

/// <summary>Starts slots. A launch either returns a ready slot (agent answered PING) or throws, leaving nothing behind.</summary>
public interface ISlotLauncher
{
    /// <summary>Prepares what every slot of <paramref name="spec"/> shares (e.g. its files in the pool directory).</summary>
    Task PrepareFunctionAsync(FunctionSpec spec, CancellationToken ct);
    Task<ISlot> LaunchAsync(FunctionSpec spec, string slotId, CancellationToken ct);
    /// <summary>Removes what <see cref="PrepareFunctionAsync"/> made, after the function's last slot is gone.</summary>
    Task ForgetFunctionAsync(FunctionSpec spec);
}
