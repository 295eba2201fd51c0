namespace Flint.Pool;

/// <summary>What the agent answered: the handler's status (0 = success, by the agent's convention) and its bytes.</summary>
public readonly record struct InvokeResult(int Status, byte[] Body);

/// <summary>An invocation's result with where and how long it ran, as the pool reports it to the invoker.</summary>
public readonly record struct PoolInvokeResult(int Status, byte[] Body, string SlotId, TimeSpan Duration);
