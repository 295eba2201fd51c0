namespace Flint.Pool;

/// <summary>Why an invocation or a registration failed. Each maps to one API status (see the daemon's routes).</summary>
public enum PoolErrorKind
{
    /// <summary>The request itself is wrong (bad config, unknown field, payload too large).</summary>
    BadRequest,
    NotFound,
    AlreadyExists,
    /// <summary>Every slot stayed busy for the whole queue timeout.</summary>
    PoolFull,
    /// <summary>The function is being drained (DELETE) or the daemon is stopping.</summary>
    Draining,
    /// <summary>A slot could not be started (jailer, flint or the guest's agent failed).</summary>
    LaunchFailed,
    /// <summary>The slot's VM exited or closed the agent connection during the invocation.</summary>
    SlotDied,
    /// <summary>The agent did not answer within the invoke timeout; the slot was killed.</summary>
    Timeout,
    /// <summary>The agent answered something that is not the protocol (or an ERROR line); the slot was killed.</summary>
    Garbage,
}

/// <summary>An error meant for the pool's user: <see cref="Exception.Message"/> is a sentence to show them.</summary>
public sealed class PoolException(PoolErrorKind kind, string message, Exception? inner = null) : Exception(message, inner)
{
    public PoolErrorKind Kind { get; } = kind;
}
