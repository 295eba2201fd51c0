using System.Text.Json;
using Flint.Vmm.Config;

namespace Flint.Vmm.Rpc;

/// <summary>
/// One API request, parsed and type-checked: what the VMM thread is asked to do. Bodies are the shared
/// configuration model (<see cref="Config"/>) where one exists; devices this build does not have yet carry their
/// normalised JSON so that GET /vm/config can show them.
/// </summary>
public abstract record VmmAction;

public sealed record GetVmInstanceInfo : VmmAction;
public sealed record GetVersion : VmmAction;
public sealed record GetVmConfig : VmmAction;
public sealed record GetMachineConfig : VmmAction;

public sealed record PutBootSource(BootSourceConfig Config) : VmmAction;
public sealed record PutDrive(DriveConfig Config) : VmmAction;
public sealed record PatchDrive(string DriveId, string? PathOnHost, JsonElement? RateLimiter) : VmmAction;

public sealed record PutMachineConfig(MachineConfig Config) : VmmAction;
/// <summary>PATCH /machine-config: only the non-null fields change.</summary>
public sealed record PatchMachineConfig(int? VcpuCount, long? MemSizeMib, bool? Smt, bool? TrackDirtyPages, string? HugePages, string? CpuTemplate) : VmmAction;

public sealed record PutLogger(LoggerConfig Config) : VmmAction;
public sealed record PutMetrics(MetricsConfig Config) : VmmAction;

public sealed record StartMicroVm : VmmAction;
public sealed record SendCtrlAltDel : VmmAction;
public sealed record FlushMetrics : VmmAction;
public sealed record Pause : VmmAction;
public sealed record Resume : VmmAction;

public sealed record PutCpuConfig(JsonElement Config) : VmmAction;

/// <summary>PUT /network-interfaces/{id}; <see cref="Config"/> is the whole normalised body.</summary>
public sealed record PutNetworkInterface(string IfaceId, string HostDevName, string? GuestMac, JsonElement Config) : VmmAction;
public sealed record PatchNetworkInterface(string IfaceId, JsonElement? RxRateLimiter, JsonElement? TxRateLimiter) : VmmAction;

public sealed record PutVsock(uint GuestCid, string UdsPath, JsonElement Config) : VmmAction;
public sealed record PutEntropy(JsonElement Config) : VmmAction;

/// <summary>PUT /pmem/{id}: configuration before the start, PCI hotplug after it.</summary>
public sealed record PutPmem(PmemConfig Config) : VmmAction;
/// <summary>PATCH /pmem/{id}: only the rate limiter changes (Firecracker's PmemDeviceUpdateConfig). Post-boot.</summary>
public sealed record PatchPmem(string Id, JsonElement? RateLimiter) : VmmAction;

public sealed record PutBalloon(uint AmountMib, bool DeflateOnOom, ushort StatsPollingIntervalS, JsonElement Config) : VmmAction;
public sealed record PatchBalloon(uint AmountMib) : VmmAction;
public sealed record GetBalloon : VmmAction;
public sealed record GetBalloonStats : VmmAction;
public sealed record PatchBalloonStatsInterval(ushort StatsPollingIntervalS) : VmmAction;
/// <summary>PATCH /balloon/hinting/start; acknowledge_on_stop defaults to true (Firecracker's StartHintingCmd).</summary>
public sealed record StartBalloonHinting(bool AcknowledgeOnStop) : VmmAction;
public sealed record GetBalloonHintingStatus : VmmAction;
public sealed record StopBalloonHinting : VmmAction;

/// <summary>PUT /hotplug/memory (pre-boot): the virtio-mem device's area.</summary>
public sealed record PutMemoryHotplug(MemoryHotplugConfig Config) : VmmAction;
/// <summary>PATCH /hotplug/memory: the new requested size.</summary>
public sealed record PatchMemoryHotplug(uint RequestedSizeMib) : VmmAction;
/// <summary>GET /hotplug/memory: the device's status.</summary>
public sealed record GetMemoryHotplug : VmmAction;

/// <summary>PUT /serial: where guest serial output goes (null: stdout) and its optional byte budget.</summary>
public sealed record PutSerial(string? SerialOutPath, Flint.Devices.RateLimiting.TokenBucketConfig? RateLimiter) : VmmAction;

/// <summary>PUT /mmds: replaces the metadata store with <see cref="Data"/> (raw JSON text).</summary>
public sealed record PutMmds(string Data) : VmmAction;
/// <summary>PATCH /mmds: RFC 7396 merge patch (raw JSON text).</summary>
public sealed record PatchMmds(string Patch) : VmmAction;
public sealed record GetMmds : VmmAction;
public sealed record PutMmdsConfig(string Version, IReadOnlyList<string> NetworkInterfaces, string Ipv4Address, JsonElement Config) : VmmAction;

/// <summary>DELETE /drives/{id}, /network-interfaces/{id}, /pmem/{id}: PCI hot-unplug (Firecracker's HotUnplugDevice).</summary>
public sealed record HotUnplugDevice(Hotplug.HotplugDeviceKind Kind, string Id) : VmmAction;

public sealed record CreateSnapshot(string SnapshotPath, string MemFilePath, string SnapshotType) : VmmAction;
public sealed record LoadSnapshot(string SnapshotPath, JsonElement Config) : VmmAction;

/// <summary>
/// What <see cref="ApiRequestParser.Parse"/> produced: exactly one of an action or an error; the route that took it
/// (null when none did: its per-route counters) and Firecracker's deprecation message when the request used a
/// deprecated field or endpoint.
/// </summary>
public readonly record struct ParsedRequest(VmmAction? Action, ApiError? Error)
{
    public ApiRoute? Route { get; init; }
    public string? Deprecation { get; init; }
    public static implicit operator ParsedRequest(VmmAction a) => new(a, null);
    public static implicit operator ParsedRequest(ApiError e) => new(null, e);
    public bool IsError => Error != null;
}
