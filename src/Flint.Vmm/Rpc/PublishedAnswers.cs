namespace Flint.Vmm.Rpc;

/// <summary>
/// Answers to the read-only requests clients poll (<c>GET /</c>, <c>GET /version</c>, <c>GET /machine-config</c>),
/// written by the <see cref="VmmController"/> on the VMM thread and read by the API thread, which then answers them
/// without handing the request to the VMM thread: that hand-off (an eventfd write, two thread wake-ups, the answer
/// back through a wait) was the larger part of their round trip.
/// <para>
/// Why the API thread's answer is never stale: the controller publishes (or withdraws) before it returns from the
/// request that changed what they show, so before that request is answered; and the API thread serves one request
/// at a time, so any request after it reads what it published. Only whole immutable answers are published; a
/// withdrawn one (null) sends the request to the VMM thread as before, which publishes it afresh.
/// </para>
/// </summary>
public sealed class PublishedAnswers
{
    private volatile ApiResponse? _instanceInfo;
    private volatile ApiResponse? _version;
    private volatile ApiResponse? _machineConfig;

    /// <summary>API thread: the published answer to <paramref name="action"/>, or null when it must go to the VMM thread.</summary>
    public ApiResponse? TryAnswer(VmmAction action) => action switch
    {
        GetVmInstanceInfo => _instanceInfo,
        GetVersion => _version,
        GetMachineConfig => _machineConfig,
        _ => null,
    };

    internal ApiResponse? InstanceInfo { set => _instanceInfo = value; }
    internal ApiResponse? Version { set => _version = value; }
    internal ApiResponse? MachineConfig { set => _machineConfig = value; }
}
