using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using Flint.Client.Models;

namespace Flint.Client;

/// <summary>
/// Source-generated System.Text.Json metadata for every API type: serialization needs no reflection, so the client
/// works under NativeAOT and trimming. Field names follow the API's snake_case (the few kebab-case keys of
/// <see cref="FullVmConfiguration"/> are named on their properties); unset optional fields are left out of requests,
/// so the VMM applies its own defaults. Public so that callers can (de)serialize the models the same way, e.g. to
/// write a Firecracker <c>--config-file</c> from a <see cref="FullVmConfiguration"/>.
/// </summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(ApiError))]
[JsonSerializable(typeof(Balloon))]
[JsonSerializable(typeof(BalloonHintingStatus))]
[JsonSerializable(typeof(BalloonStartCmd))]
[JsonSerializable(typeof(BalloonStats))]
[JsonSerializable(typeof(BalloonStatsUpdate))]
[JsonSerializable(typeof(BalloonUpdate))]
[JsonSerializable(typeof(BootSource))]
[JsonSerializable(typeof(CpuConfig))]
[JsonSerializable(typeof(Drive))]
[JsonSerializable(typeof(EntropyDevice))]
[JsonSerializable(typeof(FirecrackerVersion))]
[JsonSerializable(typeof(FullVmConfiguration))]
[JsonSerializable(typeof(InstanceActionInfo))]
[JsonSerializable(typeof(InstanceInfo))]
[JsonSerializable(typeof(Logger))]
[JsonSerializable(typeof(MachineConfiguration))]
[JsonSerializable(typeof(MachineConfigurationUpdate))]
[JsonSerializable(typeof(MemoryHotplugConfig))]
[JsonSerializable(typeof(MemoryHotplugSizeUpdate))]
[JsonSerializable(typeof(MemoryHotplugStatus))]
[JsonSerializable(typeof(Metrics))]
[JsonSerializable(typeof(MmdsConfig))]
[JsonSerializable(typeof(NetworkInterface))]
[JsonSerializable(typeof(PartialDrive))]
[JsonSerializable(typeof(PartialNetworkInterface))]
[JsonSerializable(typeof(PartialPmem))]
[JsonSerializable(typeof(Pmem))]
[JsonSerializable(typeof(SerialDevice))]
[JsonSerializable(typeof(SnapshotCreateParams))]
[JsonSerializable(typeof(SnapshotLoadParams))]
[JsonSerializable(typeof(Vm))]
[JsonSerializable(typeof(Vsock))]
[JsonSerializable(typeof(JsonNode))]
public sealed partial class FirecrackerJsonContext : JsonSerializerContext;
