namespace Flint.Pool;

public enum AgentFailure
{
    /// <summary>No answer within the deadline.</summary>
    Timeout,
    /// <summary>The connection closed or reset (the VM died, or nothing listens on the port).</summary>
    Closed,
    /// <summary>Bytes that are not the protocol: a wrong line, a wrong id, a length over the limit.</summary>
    Garbage,
    /// <summary>The agent answered <c>ERROR &lt;text&gt;</c>.</summary>
    AgentError,
}

/// <summary>A failed exchange with the in-guest agent. The connection is unusable afterwards.</summary>
public sealed class AgentException(AgentFailure failure, string message, Exception? inner = null) : Exception(message, inner)
{
    public AgentFailure Failure { get; } = failure;
}
