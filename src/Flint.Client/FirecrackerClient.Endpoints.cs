using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization.Metadata;
using Flint.Client.Models;

namespace Flint.Client;

// One method per operation of Firecracker's swagger (src/firecracker/swagger/firecracker.yaml), in its path order.
// The ids in PUT/PATCH paths come from the body (drive_id, iface_id, id), as Firecracker requires them to match.
public sealed partial class FirecrackerClient
{
    /// <summary>GET /: instance id, state and VMM version.</summary>
    public Task<InstanceInfo> GetInstanceInfoAsync(CancellationToken cancellationToken = default) =>
        GetAsync("/", Json.InstanceInfo, cancellationToken);

    /// <summary>PUT /actions: runs a synchronous action.</summary>
    public Task CreateSyncActionAsync(InstanceActionInfo action, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Put, "/actions", action, Json.InstanceActionInfo, cancellationToken);

    /// <summary>PUT /actions InstanceStart: boots the configured microVM.</summary>
    public Task StartInstanceAsync(CancellationToken cancellationToken = default) =>
        CreateSyncActionAsync(new InstanceActionInfo { ActionType = InstanceActionType.InstanceStart }, cancellationToken);

    /// <summary>PUT /actions SendCtrlAltDel: asks the guest to reboot (x86_64).</summary>
    public Task SendCtrlAltDelAsync(CancellationToken cancellationToken = default) =>
        CreateSyncActionAsync(new InstanceActionInfo { ActionType = InstanceActionType.SendCtrlAltDel }, cancellationToken);

    /// <summary>PUT /actions FlushMetrics: writes a metrics line now.</summary>
    public Task FlushMetricsAsync(CancellationToken cancellationToken = default) =>
        CreateSyncActionAsync(new InstanceActionInfo { ActionType = InstanceActionType.FlushMetrics }, cancellationToken);

    /// <summary>GET /balloon: the balloon device's configuration.</summary>
    public Task<Balloon> GetBalloonAsync(CancellationToken cancellationToken = default) =>
        GetAsync("/balloon", Json.Balloon, cancellationToken);

    /// <summary>PUT /balloon: creates or replaces the balloon device. Pre-boot only.</summary>
    public Task PutBalloonAsync(Balloon balloon, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Put, "/balloon", balloon, Json.Balloon, cancellationToken);

    /// <summary>PATCH /balloon: sets a new target size, before or after boot.</summary>
    public Task PatchBalloonAsync(BalloonUpdate update, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Patch, "/balloon", update, Json.BalloonUpdate, cancellationToken);

    /// <summary>GET /balloon/statistics: the latest statistics (when enabled pre-boot).</summary>
    public Task<BalloonStats> GetBalloonStatisticsAsync(CancellationToken cancellationToken = default) =>
        GetAsync("/balloon/statistics", Json.BalloonStats, cancellationToken);

    /// <summary>PATCH /balloon/statistics: changes the statistics polling interval.</summary>
    public Task PatchBalloonStatisticsAsync(BalloonStatsUpdate update, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Patch, "/balloon/statistics", update, Json.BalloonStatsUpdate, cancellationToken);

    /// <summary>PATCH /balloon/hinting/start: starts a free page hinting run (when enabled pre-boot).</summary>
    public Task StartBalloonHintingAsync(BalloonStartCmd? command = null, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Patch, "/balloon/hinting/start", command ?? new BalloonStartCmd(), Json.BalloonStartCmd, cancellationToken);

    /// <summary>GET /balloon/hinting/status: the free page hinting state.</summary>
    public Task<BalloonHintingStatus> GetBalloonHintingStatusAsync(CancellationToken cancellationToken = default) =>
        GetAsync("/balloon/hinting/status", Json.BalloonHintingStatus, cancellationToken);

    /// <summary>PATCH /balloon/hinting/stop: stops a free page hinting run.</summary>
    public Task StopBalloonHintingAsync(CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Patch, "/balloon/hinting/stop", null, cancellationToken);

    /// <summary>PUT /boot-source: sets the kernel, initrd and command line. Pre-boot only.</summary>
    public Task PutBootSourceAsync(BootSource bootSource, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Put, "/boot-source", bootSource, Json.BootSource, cancellationToken);

    /// <summary>PUT /cpu-config: sets a custom CPU template. Pre-boot only.</summary>
    public Task PutCpuConfigAsync(CpuConfig cpuConfig, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Put, "/cpu-config", cpuConfig, Json.CpuConfig, cancellationToken);

    /// <summary>PUT /drives/{drive_id}: creates or replaces a block device. Pre-boot only.</summary>
    public Task PutDriveAsync(Drive drive, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(drive);
        return SendAsync(HttpMethod.Put, Resource("/drives/", drive.DriveId), drive, Json.Drive, cancellationToken);
    }

    /// <summary>PATCH /drives/{drive_id}: swaps the backing file or the rate limiter. Post-boot only.</summary>
    public Task PatchDriveAsync(PartialDrive drive, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(drive);
        return SendAsync(HttpMethod.Patch, Resource("/drives/", drive.DriveId), drive, Json.PartialDrive, cancellationToken);
    }

    /// <summary>PUT /pmem/{id}: creates or replaces a pmem device. Pre-boot only.</summary>
    public Task PutPmemAsync(Pmem pmem, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(pmem);
        return SendAsync(HttpMethod.Put, Resource("/pmem/", pmem.Id), pmem, Json.Pmem, cancellationToken);
    }

    /// <summary>PATCH /pmem/{id}: changes a pmem device's rate limiter. Post-boot only.</summary>
    public Task PatchPmemAsync(PartialPmem pmem, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(pmem);
        return SendAsync(HttpMethod.Patch, Resource("/pmem/", pmem.Id), pmem, Json.PartialPmem, cancellationToken);
    }

    /// <summary>PUT /logger: sets up the log output.</summary>
    public Task PutLoggerAsync(Logger logger, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Put, "/logger", logger, Json.Logger, cancellationToken);

    /// <summary>GET /machine-config: vCPUs, memory and CPU options.</summary>
    public Task<MachineConfiguration> GetMachineConfigAsync(CancellationToken cancellationToken = default) =>
        GetAsync("/machine-config", Json.MachineConfiguration, cancellationToken);

    /// <summary>PUT /machine-config: sets the whole machine configuration (omitted options take defaults). Pre-boot only.</summary>
    public Task PutMachineConfigAsync(MachineConfiguration config, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Put, "/machine-config", config, Json.MachineConfiguration, cancellationToken);

    /// <summary>PATCH /machine-config: changes the given fields only. Pre-boot only.</summary>
    public Task PatchMachineConfigAsync(MachineConfigurationUpdate update, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Patch, "/machine-config", update, Json.MachineConfigurationUpdate, cancellationToken);

    /// <summary>PUT /metrics: sets up the metrics output (once per process).</summary>
    public Task PutMetricsAsync(Metrics metrics, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Put, "/metrics", metrics, Json.Metrics, cancellationToken);

    /// <summary>PUT /mmds: replaces the metadata store with <paramref name="contents"/> (a JSON object).</summary>
    public Task PutMmdsAsync(JsonNode contents, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Put, "/mmds", contents, Json.JsonNode, cancellationToken);

    /// <summary>PUT /mmds with contents of the caller's own (source-generated) type.</summary>
    public Task PutMmdsAsync<T>(T contents, JsonTypeInfo<T> contentsType, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Put, "/mmds", contents, contentsType, cancellationToken);

    /// <summary>PATCH /mmds: merges <paramref name="patch"/> into the store (JSON merge patch, RFC 7396).</summary>
    public Task PatchMmdsAsync(JsonNode patch, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Patch, "/mmds", patch, Json.JsonNode, cancellationToken);

    /// <summary>PATCH /mmds with a patch of the caller's own (source-generated) type.</summary>
    public Task PatchMmdsAsync<T>(T patch, JsonTypeInfo<T> patchType, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Patch, "/mmds", patch, patchType, cancellationToken);

    /// <summary>GET /mmds: the metadata store. Firecracker answers 404 (a <see cref="FirecrackerApiException"/>) when it was never set.</summary>
    public async Task<JsonNode?> GetMmdsAsync(CancellationToken cancellationToken = default)
    {
        var bytes = await SendAsync(HttpMethod.Get, "/mmds", null, cancellationToken).ConfigureAwait(false);
        try
        {
            return JsonNode.Parse(bytes);
        }
        catch (JsonException e)
        {
            throw new FirecrackerClientException($"GET /mmds: the answer is not JSON ({e.Message})", e);
        }
    }

    /// <summary>GET /mmds read into the caller's own (source-generated) type.</summary>
    public Task<T> GetMmdsAsync<T>(JsonTypeInfo<T> contentsType, CancellationToken cancellationToken = default) =>
        GetAsync("/mmds", contentsType, cancellationToken);

    /// <summary>PUT /mmds/config: the MMDS version, address and interfaces. Pre-boot only.</summary>
    public Task PutMmdsConfigAsync(MmdsConfig config, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Put, "/mmds/config", config, Json.MmdsConfig, cancellationToken);

    /// <summary>PUT /entropy: adds a virtio-rng device. Pre-boot only.</summary>
    public Task PutEntropyAsync(EntropyDevice entropy, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Put, "/entropy", entropy, Json.EntropyDevice, cancellationToken);

    /// <summary>PUT /serial: where the serial console output goes.</summary>
    public Task PutSerialAsync(SerialDevice serial, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Put, "/serial", serial, Json.SerialDevice, cancellationToken);

    /// <summary>PUT /hotplug/memory: sets up hotpluggable memory (virtio-mem).</summary>
    public Task PutMemoryHotplugAsync(MemoryHotplugConfig config, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Put, "/hotplug/memory", config, Json.MemoryHotplugConfig, cancellationToken);

    /// <summary>PATCH /hotplug/memory: asks the guest to plug or unplug memory up to a new size.</summary>
    public Task PatchMemoryHotplugAsync(MemoryHotplugSizeUpdate update, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Patch, "/hotplug/memory", update, Json.MemoryHotplugSizeUpdate, cancellationToken);

    /// <summary>GET /hotplug/memory: the hotpluggable memory's sizes and progress.</summary>
    public Task<MemoryHotplugStatus> GetMemoryHotplugAsync(CancellationToken cancellationToken = default) =>
        GetAsync("/hotplug/memory", Json.MemoryHotplugStatus, cancellationToken);

    /// <summary>PUT /network-interfaces/{iface_id}: adds a network interface. Pre-boot only.</summary>
    public Task PutNetworkInterfaceAsync(NetworkInterface iface, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(iface);
        return SendAsync(HttpMethod.Put, Resource("/network-interfaces/", iface.IfaceId), iface, Json.NetworkInterface, cancellationToken);
    }

    /// <summary>PATCH /network-interfaces/{iface_id}: changes an interface's rate limiters. Post-boot only.</summary>
    public Task PatchNetworkInterfaceAsync(PartialNetworkInterface iface, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(iface);
        return SendAsync(HttpMethod.Patch, Resource("/network-interfaces/", iface.IfaceId), iface, Json.PartialNetworkInterface, cancellationToken);
    }

    /// <summary>PUT /snapshot/create: writes a snapshot of the paused microVM.</summary>
    public Task CreateSnapshotAsync(SnapshotCreateParams parameters, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Put, "/snapshot/create", parameters, Json.SnapshotCreateParams, cancellationToken);

    /// <summary>PUT /snapshot/load: restores a snapshot into this fresh process.</summary>
    public Task LoadSnapshotAsync(SnapshotLoadParams parameters, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Put, "/snapshot/load", parameters, Json.SnapshotLoadParams, cancellationToken);

    /// <summary>GET /version: the Firecracker (API) version.</summary>
    public Task<FirecrackerVersion> GetVersionAsync(CancellationToken cancellationToken = default) =>
        GetAsync("/version", Json.FirecrackerVersion, cancellationToken);

    /// <summary>PATCH /vm: pauses or resumes the microVM.</summary>
    public Task PatchVmAsync(Vm vm, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Patch, "/vm", vm, Json.Vm, cancellationToken);

    /// <summary>PATCH /vm Paused: stops the vCPUs.</summary>
    public Task PauseAsync(CancellationToken cancellationToken = default) =>
        PatchVmAsync(new Vm { State = VmState.Paused }, cancellationToken);

    /// <summary>PATCH /vm Resumed: runs the vCPUs again.</summary>
    public Task ResumeAsync(CancellationToken cancellationToken = default) =>
        PatchVmAsync(new Vm { State = VmState.Resumed }, cancellationToken);

    /// <summary>GET /vm/config: the whole configuration (the shape of a Firecracker config file).</summary>
    public Task<FullVmConfiguration> GetVmConfigAsync(CancellationToken cancellationToken = default) =>
        GetAsync("/vm/config", Json.FullVmConfiguration, cancellationToken);

    /// <summary>PUT /vsock: adds the vsock device. Pre-boot only.</summary>
    public Task PutVsockAsync(Vsock vsock, CancellationToken cancellationToken = default) =>
        SendAsync(HttpMethod.Put, "/vsock", vsock, Json.Vsock, cancellationToken);
}
