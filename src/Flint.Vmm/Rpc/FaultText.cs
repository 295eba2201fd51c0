namespace Flint.Vmm.Rpc;

/// <summary>
/// The one place that knows how Firecracker composes a VMM action's fault_message: "&lt;Area&gt; error: &lt;inner&gt;",
/// the area being the VmmActionError variant its handler maps failures to (rpc_interface.rs, each variant's Display).
/// Handlers throw the inner text only; <see cref="VmmController"/> adds the prefix here, so a new failure cannot
/// forget it and no message carries it twice.
/// </summary>
public static class FaultText
{
    /// <summary>The VmmActionError prefix for failures of <paramref name="action"/> in the given boot phase; null: none.</summary>
    public static string? Prefix(VmmAction action, bool started) => action switch
    {
        PutBootSource => "Boot source error: ",
        PutDrive or PatchDrive => "Drive config error: ",
        PutMachineConfig or PatchMachineConfig => "Machine config error: ",
        PutLogger => "Logger error: ",
        PutMetrics => "Metrics error: ",
        StartMicroVm => "Start microvm error: ",
        PutNetworkInterface or PatchNetworkInterface => "Network config error: ",
        PutVsock => "Vsock config error: ",
        PutEntropy => "Entropy config error: ",
        PutPmem or PatchPmem => "Pmem config error: ",
        PutBalloon => "Balloon config error: ",
        // Pre-boot the balloon's config comes from VmResources (BalloonConfig); after boot from the Vmm (InternalVmm).
        GetBalloon => started ? "Internal VMM error: " : "Balloon config error: ",
        GetBalloonStats => "Internal VMM error: ",
        PatchBalloon or PatchBalloonStatsInterval or StartBalloonHinting or GetBalloonHintingStatus or StopBalloonHinting
            => "Balloon update error: ",
        // Firecracker's Display really reads "MMMDS" (rpc_interface.rs MmdsConfig); clients match it as it is.
        PutMmdsConfig => "MMMDS config error: ",
        PutMmds or PatchMmds or GetMmds => "MMDS error: ",
        SendCtrlAltDel or Pause or Resume or FlushMetrics => "Internal VMM error: ",
        CreateSnapshot => "Create snapshot error: ",
        LoadSnapshot => "Load snapshot error: ",
        PutMemoryHotplug => "Memory hotplug config error: ",
        PatchMemoryHotplug => "Memory hotplug update error: ",
        GetMemoryHotplug => "Internal VMM error: ",
        _ => null,
    };

    /// <summary>MmdsDatastoreError::DataStoreLimitExceeded has its own variant (and status 413).</summary>
    public const string MmdsLimitExceededPrefix = "MMDS limit exceeded error: ";

    /// <summary><paramref name="inner"/> with the area prefix, unless it already starts with it.</summary>
    public static string Compose(string? prefix, string inner) =>
        prefix == null || inner.StartsWith(prefix, StringComparison.Ordinal) ? inner : prefix + inner;

    /// <summary>
    /// A failure's inner text for a user: the OS's words (Rust io::Error style) for I/O and system-call failures, a
    /// fixed sentence for the .NET exceptions whose messages are always .NET's own (overflow, format, JSON), and the
    /// message otherwise (Flint's exceptions carry Flint's words).
    /// </summary>
    public static string Inner(Exception e, string? path = null) => e switch
    {
        IOException or UnauthorizedAccessException or Flint.Sys.SysException => IoErrorText.Of(e, path),
        OverflowException => "a value is out of the range this build of Flint supports",
        FormatException or System.Text.Json.JsonException => "a value is not in the expected format",
        _ => e.Message,
    };

    /// <summary>
    /// Why InstanceStart failed (StartMicrovmError's Display): /dev/kvm that cannot be opened in Firecracker's words
    /// (vstate/kvm.rs KvmError::Kvm, which names the ACL to check), anything else as an internal error.
    /// </summary>
    public static string StartFailure(Exception e) => e switch
    {
        Flint.Kvm.KvmException k when k.Operation.StartsWith("open ", StringComparison.Ordinal) =>
            $"Kvm error: Error creating KVM object: {IoErrorText.Of(k)} Make sure the user launching the firecracker process is configured on the /dev/kvm file's ACL.",
        // Firecracker's StartMicrovmError::AllocateResources: the hotplug area does not fit its window or KVM's slots.
        Config.ConfigException { Area: Config.ConfigArea.MemoryHotplug } c => $"Failed to allocate guest resource: {c.Detail}",
        Builder.SerialOutOpenException so => $"Failed to create device manager: Error with EventFd: {so.Message}",
        Builder.PmemAttachException pm => pm.Message,
        Flint.Sys.SysException s => $"Internal error while starting microVM: {s.Operation} failed: {IoErrorText.Of(s)}",
        _ => $"Internal error while starting microVM: {Inner(e)}",
    };
}
