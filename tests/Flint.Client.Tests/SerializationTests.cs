using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization.Metadata;
using Flint.Client.Models;

namespace Flint.Client.Tests;

/// <summary>
/// Each model read from a body in Firecracker's own docs, tests or swagger and written back gives the same JSON:
/// every field name and value survives, so nothing the VMM sends or expects is lost or misspelt.
/// </summary>
public sealed class SerializationTests
{
    private static readonly FirecrackerJsonContext Ctx = FirecrackerJsonContext.Default;

    public static TheoryData<string> Examples => new(typeof(SwaggerExamples)
        .GetFields(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Static).Select(f => f.Name));

    [Theory]
    [MemberData(nameof(Examples))]
    public void Example_round_trips(string name)
    {
        var json = (string)typeof(SwaggerExamples).GetField(name)!.GetValue(null)!;
        var written = name switch
        {
            nameof(SwaggerExamples.VmConfig) or nameof(SwaggerExamples.VmConfigWithMmdsV2) => RoundTrip(json, Ctx.FullVmConfiguration),
            nameof(SwaggerExamples.GettingStartedLogger) => RoundTrip(json, Ctx.Logger),
            nameof(SwaggerExamples.GettingStartedBootSource) => RoundTrip(json, Ctx.BootSource),
            nameof(SwaggerExamples.GettingStartedDrive) or nameof(SwaggerExamples.DriveWithRateLimiter) => RoundTrip(json, Ctx.Drive),
            nameof(SwaggerExamples.GettingStartedNetworkInterface) or nameof(SwaggerExamples.NetworkInterfaceWithLimiters) => RoundTrip(json, Ctx.NetworkInterface),
            nameof(SwaggerExamples.GettingStartedAction) => RoundTrip(json, Ctx.InstanceActionInfo),
            nameof(SwaggerExamples.SnapshotPause) => RoundTrip(json, Ctx.Vm),
            nameof(SwaggerExamples.SnapshotCreate) => RoundTrip(json, Ctx.SnapshotCreateParams),
            nameof(SwaggerExamples.SnapshotMachineConfig) => RoundTrip(json, Ctx.MachineConfiguration),
            nameof(SwaggerExamples.Vsock) => RoundTrip(json, Ctx.Vsock),
            nameof(SwaggerExamples.SnapshotLoadWithVsockOverride) or nameof(SwaggerExamples.SnapshotLoadAllFields) => RoundTrip(json, Ctx.SnapshotLoadParams),
            nameof(SwaggerExamples.BalloonWithHinting) => RoundTrip(json, Ctx.Balloon),
            nameof(SwaggerExamples.BalloonHintingStart) => RoundTrip(json, Ctx.BalloonStartCmd),
            nameof(SwaggerExamples.BalloonStats) => RoundTrip(json, Ctx.BalloonStats),
            nameof(SwaggerExamples.BalloonHintingStatus) => RoundTrip(json, Ctx.BalloonHintingStatus),
            nameof(SwaggerExamples.InstanceInfo) => RoundTrip(json, Ctx.InstanceInfo),
            nameof(SwaggerExamples.Version) => RoundTrip(json, Ctx.FirecrackerVersion),
            nameof(SwaggerExamples.Error) => RoundTrip(json, Ctx.ApiError),
            nameof(SwaggerExamples.PatchDrive) => RoundTrip(json, Ctx.PartialDrive),
            nameof(SwaggerExamples.PatchNetworkInterface) => RoundTrip(json, Ctx.PartialNetworkInterface),
            nameof(SwaggerExamples.MetricsWithProperties) => RoundTrip(json, Ctx.Metrics),
            nameof(SwaggerExamples.MmdsConfig) => RoundTrip(json, Ctx.MmdsConfig),
            nameof(SwaggerExamples.Entropy) => RoundTrip(json, Ctx.EntropyDevice),
            nameof(SwaggerExamples.Pmem) => RoundTrip(json, Ctx.Pmem),
            nameof(SwaggerExamples.PatchPmem) => RoundTrip(json, Ctx.PartialPmem),
            nameof(SwaggerExamples.MemoryHotplug) => RoundTrip(json, Ctx.MemoryHotplugConfig),
            nameof(SwaggerExamples.MemoryHotplugPatch) => RoundTrip(json, Ctx.MemoryHotplugSizeUpdate),
            nameof(SwaggerExamples.MemoryHotplugStatus) => RoundTrip(json, Ctx.MemoryHotplugStatus),
            nameof(SwaggerExamples.CpuConfigX86) or nameof(SwaggerExamples.CpuConfigArm) => RoundTrip(json, Ctx.CpuConfig),
            nameof(SwaggerExamples.Serial) => RoundTrip(json, Ctx.SerialDevice),
            _ => throw new InvalidOperationException($"no model for example {name}: add it to this switch"),
        };
        var expected = WithoutNulls(JsonNode.Parse(json));
        Assert.True(JsonNode.DeepEquals(expected, JsonNode.Parse(written)),
            $"{name}: wrote\n{written}\nexpected (nulls dropped: absent and null mean the same to Firecracker's serde)\n{expected!.ToJsonString()}");
    }

    /// <summary>Reads with unmapped members refused, so a field the model misspells fails here instead of vanishing.</summary>
    private static string RoundTrip<T>(string json, JsonTypeInfo<T> type)
    {
        var strict = new JsonSerializerOptions(type.Options) { UnmappedMemberHandling = System.Text.Json.Serialization.JsonUnmappedMemberHandling.Disallow };
        var strictType = (JsonTypeInfo<T>)strict.GetTypeInfo(typeof(T));
        var value = JsonSerializer.Deserialize(json, strictType);
        Assert.NotNull(value);
        return JsonSerializer.Serialize(value, type);
    }

    [Fact]
    public void The_round_trip_check_catches_a_misspelt_field()
    {
        // What makes Example_round_trips mean something: a field name the model does not have fails the read.
        Assert.Throws<JsonException>(() => RoundTrip("""{"vcpu_count":1,"mem_size_mb":128}""", Ctx.MachineConfiguration));
    }

    private static JsonNode? WithoutNulls(JsonNode? node)
    {
        switch (node)
        {
            case JsonObject o:
                foreach (var (key, _) in o.Where(p => p.Value is null).ToList()) o.Remove(key);
                foreach (var (_, v) in o) WithoutNulls(v);
                break;
            case JsonArray a:
                foreach (var v in a) WithoutNulls(v);
                break;
        }
        return node;
    }

    [Fact]
    public void Unset_optional_fields_are_left_out_so_the_vmm_applies_its_defaults()
    {
        var json = JsonSerializer.Serialize(new MachineConfiguration { VcpuCount = 1, MemSizeMib = 128 }, Ctx.MachineConfiguration);
        Assert.Equal("""{"vcpu_count":1,"mem_size_mib":128}""", json);
        Assert.Equal("{}", JsonSerializer.Serialize(new MachineConfigurationUpdate(), Ctx.MachineConfigurationUpdate));
    }

    [Fact]
    public void Enums_are_written_as_firecracker_spells_them()
    {
        Assert.Equal("""{"action_type":"SendCtrlAltDel"}""",
            JsonSerializer.Serialize(new InstanceActionInfo { ActionType = InstanceActionType.SendCtrlAltDel }, Ctx.InstanceActionInfo));
        Assert.Equal("""{"state":"Resumed"}""", JsonSerializer.Serialize(new Vm { State = VmState.Resumed }, Ctx.Vm));
        Assert.Equal("""{"mem_file_path":"m","snapshot_path":"s","snapshot_type":"Diff"}""",
            JsonSerializer.Serialize(new SnapshotCreateParams { MemFilePath = "m", SnapshotPath = "s", SnapshotType = SnapshotType.Diff }, Ctx.SnapshotCreateParams));
    }

    [Fact]
    public void Values_the_client_does_not_know_are_still_read()
    {
        // A newer VMM may report a state, template or huge-page mode this client predates: those fields are strings.
        var info = JsonSerializer.Deserialize("""{"app_name":"Firecracker","id":"x","state":"Hibernating","vmm_version":"9.0.0","extra":1}""", Ctx.InstanceInfo)!;
        Assert.Equal("Hibernating", info.State);
        var mc = JsonSerializer.Deserialize("""{"vcpu_count":1,"mem_size_mib":128,"cpu_template":"Future","huge_pages":"1G"}""", Ctx.MachineConfiguration)!;
        Assert.Equal(("Future", "1G"), (mc.CpuTemplate, mc.HugePages));
    }
}
