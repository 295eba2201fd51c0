using System.Diagnostics;
using Flint.Vmm.Config;
using Flint.Vmm.Logging;
using Flint.Vmm.Snapshot;

namespace Flint.Vmm.Rpc;

/// <summary>
/// PUT /snapshot/create and /snapshot/load, with Firecracker's state rules: create only on a started VM (and the VM
/// must be paused), load only before boot and before anything but the logger and metrics was configured.
/// </summary>
public sealed partial class VmmController
{
    public const string LoadNotAllowed = "Load snapshot error: Loading a microVM snapshot not allowed after configuring boot-specific resources.";

    /// <summary>Creates a snapshot of the running VM (the process wires it to <see cref="SnapshotCreator"/>).</summary>
    public Action<SnapshotCreateParams>? CreateSnapshotHandler { get; init; }

    /// <summary>Loads a snapshot and returns its configuration and the restored VM (Paused); throws <see cref="SnapshotException"/>.</summary>
    public Func<SnapshotLoadParams, (VmConfig Config, IRunningVm Vm)>? LoadSnapshotHandler { get; init; }

    /// <summary>Called after a load failed half-way and was answered: the process must end (exit 1), as Firecracker's does.</summary>
    public Action? OnFatalLoadError { get; init; }

    /// <summary>Firecracker's latencies_us snapshot keys.</summary>
    public SnapshotMetrics SnapshotMetrics { get; init; } = new();

    // Firecracker's boot_path: set by any request for a boot-specific resource, even one that fails (its controller
    // sets it before handling), and a snapshot can no longer be loaded after it.
    private bool _bootPath;

    private void NoteBootPath(VmmAction action)
    {
        if (_vm == null && action is PutBootSource or PutDrive or PutMachineConfig or PatchMachineConfig
            or PutNetworkInterface or PutVsock or PutEntropy or PutBalloon or PutMmdsConfig or PutMemoryHotplug)
            _bootPath = true;
    }

    private ApiResponse CreateSnapshotAction(CreateSnapshot c)
    {
        long start = Stopwatch.GetTimestamp();
        var p = new SnapshotCreateParams(c.SnapshotPath, c.MemFilePath, c.SnapshotType == "Diff");
        // Firecracker's log_dev_preview_warning, with its "[DevPreview]" prefix.
        if (p.Diff) Logger.Warn("[DevPreview] Virtual machine diff snapshots is in development preview.");
        if (CreateSnapshotHandler == null) throw new ApiFault("Create snapshot error: this VMM cannot create snapshots.");
        if (_vm is not { IsPaused: true }) throw new ApiFault("Create snapshot error: Cannot save the microVM state: Vcpu is in unexpected state.");
        try { CreateSnapshotHandler(p); }
        catch (SnapshotException e) { throw new ApiFault(e.Message); }
        long us = SnapshotCreator.ElapsedUs(start);
        SnapshotMetrics.RecordCreate(p.Diff, us, us);
        Logger.Info($"'create {(p.Diff ? "diff" : "full")} snapshot' VMM action took {us} us.");
        return ApiResponse.NoContent;
    }

    private ApiResponse LoadSnapshotAction(LoadSnapshot l)
    {
        long start = Stopwatch.GetTimestamp();
        if (_bootPath)
        {
            Logger.Info(LoadNotAllowed["Load snapshot error: ".Length..]);
            throw new ApiFault(LoadNotAllowed);
        }
        if (LoadSnapshotHandler == null) throw new ApiFault("Load snapshot error: this VMM cannot load snapshots.");
        SnapshotLoadParams p;
        (VmConfig Config, IRunningVm Vm) loaded;
        try { p = SnapshotLoadParams.From(l.SnapshotPath, l.Config); }
        catch (SnapshotException e) { throw new ApiFault(e.Message); }
        try { loaded = LoadSnapshotHandler(p); }
        catch (SnapshotException e)
        {
            if (e.Fatal) OnFatalLoadError?.Invoke();
            throw new ApiFault(e.Message);
        }
        // GET /vm/config after a load: the snapshot's configuration, with this process's logger and metrics.
        var outputs = (_cfg.Logger, _cfg.Metrics);
        CopyInto(loaded.Config, _cfg);
        (_cfg.Logger, _cfg.Metrics) = outputs;
        _vm = loaded.Vm;
        if (p.ResumeVm)
        {
            try { _vm.Resume(); }
            catch (Exception e) when (IsRequestFailure(e))
            {
                OnFatalLoadError?.Invoke();
                throw new ApiFault($"Load snapshot error: Failed to resume microVM: {e.Message}");
            }
        }
        long us = SnapshotCreator.ElapsedUs(start);
        SnapshotMetrics.RecordLoad(us, us);
        Logger.Debug($"'load snapshot' VMM action took {us} us.");
        return ApiResponse.NoContent;
    }
}
