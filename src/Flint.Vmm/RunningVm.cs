using System.Text.Json;
using Flint.Devices.RateLimiting;
using Flint.Vmm.Config;
using Flint.Vmm.Rpc;

namespace Flint.Vmm;

/// <summary>The API's view of a started VM: pause/resume, Ctrl+Alt+Del, drive and limiter updates, balloon control.</summary>
public sealed class RunningVm(Vmm vmm, Metrics.VmLatencyMetrics? latencies = null) : IRunningVm
{
    public Vmm Vmm { get; } = vmm;

    /// <summary>Where pause and resume store their duration (latencies_us.vmm_pause_vm / vmm_resume_vm).</summary>
    private readonly Metrics.VmLatencyMetrics _latencies = latencies ?? new();

    /// <summary>Called after a device was hot-plugged or unplugged (the process rebinds its per-device metrics).</summary>
    public Action? DevicesChanged { get; init; }

    private Hotplug.PciHotplug? _hotplug;
    private Hotplug.PciHotplug Hotplugger => _hotplug ??= new Hotplug.PciHotplug(Vmm) { DevicesChanged = DevicesChanged };

    public bool PciEnabled => Vmm.Devices.Pci != null;
    public void HotplugDrive(DriveConfig drive)
    {
        if (drive.Socket != null) Hotplugger.PlugVhostUserDrive(drive);
        else Hotplugger.PlugDrive(drive);
    }
    public void HotplugNet(NetConfig net, Flint.Devices.Virtio.Net.Tap tap) => Hotplugger.PlugNet(net, tap);
    public void HotplugPmem(PmemConfig pmem) => Hotplugger.PlugPmem(pmem);
    public void HotUnplug(Hotplug.HotplugDeviceKind kind, string id) => Hotplugger.Unplug(kind, id);

    public bool IsPaused => Vmm.IsPaused;
    public void Pause() => _latencies.TimeVmmPause(Vmm.Pause);
    public void Resume() => _latencies.TimeVmmResume(Vmm.Resume);

    public void SendCtrlAltDel()
    {
        if (!Vmm.I8042.SendCtrlAltDel())
            throw new InvalidOperationException("Failed to send Ctrl+Alt+Del: the i8042 buffer is full.");
    }

    public void PatchDrive(string driveId, string pathOnHost) => Block(driveId).UpdateBackingFile(pathOnHost);

    public void RefreshVhostUserDrive(string driveId)
    {
        var dev = Vmm.Devices.VhostUserBlocks.FirstOrDefault(b => b.DriveId == driveId)
            ?? throw new InvalidOperationException(DriveUpdateRules.WrongBackend);
        try { dev.RefreshConfig(); }
        catch (Flint.Devices.Virtio.VhostUser.VhostUserException e)
        {
            // VmmError::Block(BlockError::VhostUserBackend(VhostUserBlockError::Vhost(..))).
            throw new InvalidOperationException($"Block: Vhost user backend error: Vhost error: {e.Message}");
        }
    }

    public void PatchDriveRateLimiter(string driveId, JsonElement rateLimiter)
    {
        var cfg = DeviceConfigs.Limiter(rateLimiter, "rate_limiter");
        var limiter = Block(driveId).RateLimiter ?? throw new InvalidOperationException($"Drive {driveId} has no rate limiter.");
        limiter.Update(cfg);
    }

    public void PatchNetwork(string ifaceId, JsonElement? rx, JsonElement? tx)
    {
        foreach (var n in Vmm.Devices.Nets)
        {
            if (n.Id != ifaceId) continue;
            // Parse both first so a bad second body changes nothing.
            RateLimiterConfig? rxCfg = rx is { } r ? DeviceConfigs.Limiter(r, "rx_rate_limiter") : null;
            RateLimiterConfig? txCfg = tx is { } t ? DeviceConfigs.Limiter(t, "tx_rate_limiter") : null;
            if (rxCfg != null) n.Rx.Update(rxCfg);
            if (txCfg != null) n.Tx.Update(txCfg);
            return;
        }
        throw new InvalidOperationException($"Invalid network interface ID - not found: {ifaceId}.");
    }

    public void PatchPmemRateLimiter(string id, JsonElement rateLimiter)
    {
        var dev = Vmm.Devices.Pmems.FirstOrDefault(p => p.Id == id) ?? throw new InvalidOperationException(IRunningVm.PmemNotFound);
        var cfg = DeviceConfigs.Limiter(rateLimiter, "rate_limiter");
        // Every pmem device has a limiter (an unlimited one when none was configured), as Firecracker's has.
        dev.RateLimiter!.Update(cfg);
    }

    public string GetBalloonJson() => Balloon.GetConfig().ToJson();
    public string GetBalloonStatsJson() => Balloon.GetStats().ToJson();
    public void PatchBalloon(uint amountMib) => Balloon.UpdateTarget(amountMib);
    public void PatchBalloonStatsInterval(uint intervalS) => Balloon.UpdateStatsInterval(intervalS);
    public void StartBalloonHinting(bool acknowledgeOnStop) => Balloon.StartHinting(acknowledgeOnStop);
    public string GetBalloonHintingStatusJson() => Balloon.GetHintingStatus().ToJson();
    public void StopBalloonHinting() => Balloon.StopHinting();

    public void PatchMemoryHotplug(uint requestedSizeMib) => MemoryDevice.UpdateRequestedSize(requestedSizeMib);
    public string GetMemoryHotplugJson() => MemoryDevice.Status().ToJson();

    private Flint.Devices.Virtio.Mem.VirtioMem MemoryDevice =>
        Vmm.Devices.Memory ?? throw new InvalidOperationException("Device not found");

    private Flint.Devices.Virtio.Balloon.VirtioBalloon Balloon =>
        Vmm.Devices.Balloon ?? throw new InvalidOperationException("No balloon device found.");

    private Flint.Devices.Virtio.Block.VirtioBlock Block(string driveId) =>
        Vmm.Blocks.FirstOrDefault(b => b.Id == driveId).Device ?? throw new InvalidOperationException($"Invalid block device ID: {driveId}.");
}
