namespace Flint.Pool;

/// <summary>A snapshot a function's slots are cloned from: Flint's state file and its memory file.</summary>
public sealed record SnapshotSource(string StatePath, string MemPath);

/// <summary>
/// A registered function, validated: what a slot runs (a kernel booted with the handler's cmdline options, or a
/// snapshot restored) and the pool's limits for it. Built once from the API's JSON by <see cref="FunctionSpecParser"/>;
/// immutable afterwards, so a slot launch never sees a half-changed spec.
/// </summary>
public sealed record FunctionSpec
{
    public required string Name { get; init; }
    /// <summary>Host path of the guest kernel (boot slots).</summary>
    public string? KernelPath { get; init; }
    /// <summary>Host path of the root filesystem image; null for a guest without a disk (the test guest).</summary>
    public string? RootfsPath { get; init; }
    /// <summary>A read-only rootfs is shared by every slot (hard link); a writable one is copied per slot.</summary>
    public bool RootfsReadOnly { get; init; } = true;
    public string BootArgs { get; init; } = "console=ttyS0 reboot=k panic=1";
    /// <summary>The handler's options, appended to <see cref="BootArgs"/> (e.g. <c>tg.agent=5005 tg.agent.handler=upper</c>).</summary>
    public string HandlerArgs { get; init; } = "";
    public int VcpuCount { get; init; } = 1;
    public int MemSizeMib { get; init; } = 128;
    public SnapshotSource? Snapshot { get; init; }
    /// <summary>The vsock port the in-guest agent listens on.</summary>
    public int AgentPort { get; init; } = 5005;

    public int MinWarm { get; init; } = 1;
    public int MaxSlots { get; init; } = 4;
    /// <summary>A slot is recycled (stopped and replaced) after this many invocations; 0: never.</summary>
    public int MaxInvocationsPerSlot { get; init; }
    /// <summary>An idle slot above <see cref="MinWarm"/> is stopped after this long.</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromSeconds(60);
    public TimeSpan InvokeTimeout { get; init; } = TimeSpan.FromSeconds(10);
    /// <summary>How long an invocation waits for a free slot when all <see cref="MaxSlots"/> are busy.</summary>
    public TimeSpan QueueTimeout { get; init; } = TimeSpan.FromSeconds(5);
    /// <summary>From starting the jailer to the agent's first PONG.</summary>
    public TimeSpan ReadyTimeout { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>The largest payload and the largest result the agent may send back.</summary>
    public int MaxPayloadBytes { get; init; } = 1 << 20;
    public int MaxResultBytes { get; init; } = 1 << 20;
    /// <summary>flint-jailer <c>--cgroup</c> values for each slot (e.g. <c>memory.max=268435456</c>); null: the pool's default.</summary>
    public IReadOnlyList<string>? Cgroups { get; init; }

    public bool IsSnapshot => Snapshot != null;
    public string FullBootArgs => HandlerArgs.Length == 0 ? BootArgs : BootArgs + " " + HandlerArgs;
}
