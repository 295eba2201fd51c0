using System.Text.Json.Nodes;
using Flint.Client.Models;

namespace Flint.Client.Tests;

/// <summary>The client has a call for each operation of Firecracker's swagger, and each call sends that operation.</summary>
public sealed class EndpointCoverageTests
{
    /// <summary>
    /// Every (method, path) of src/firecracker/swagger/firecracker.yaml at Firecracker main 81b38b9d, in its order;
    /// path parameters filled with the ids used below.
    /// </summary>
    private static readonly string[] SwaggerOperations =
    [
        "GET /", "PUT /actions",
        "GET /balloon", "PUT /balloon", "PATCH /balloon", "GET /balloon/statistics", "PATCH /balloon/statistics",
        "PATCH /balloon/hinting/start", "GET /balloon/hinting/status", "PATCH /balloon/hinting/stop",
        "PUT /boot-source", "PUT /cpu-config", "PUT /drives/d1", "PATCH /drives/d1", "PUT /pmem/p1", "PATCH /pmem/p1",
        "PUT /logger", "GET /machine-config", "PUT /machine-config", "PATCH /machine-config", "PUT /metrics",
        "PUT /mmds", "PATCH /mmds", "GET /mmds", "PUT /mmds/config", "PUT /entropy", "PUT /serial",
        "PUT /hotplug/memory", "PATCH /hotplug/memory", "GET /hotplug/memory",
        "PUT /network-interfaces/n1", "PATCH /network-interfaces/n1", "PUT /snapshot/create", "PUT /snapshot/load",
        "GET /version", "PATCH /vm", "GET /vm/config", "PUT /vsock",
    ];

    [Fact]
    public async Task Each_swagger_operation_has_a_call_that_sends_it()
    {
        using var server = new FakeApiServer(r => r.Method == "GET" ? (200, "{}") : (204, ""));
        using var c = new FirecrackerClient(server.SocketPath);
        var calls = new Func<Task>[]
        {
            () => c.GetInstanceInfoAsync(), () => c.FlushMetricsAsync(),
            () => c.GetBalloonAsync(), () => c.PutBalloonAsync(new Balloon()), () => c.PatchBalloonAsync(new BalloonUpdate()),
            () => c.GetBalloonStatisticsAsync(), () => c.PatchBalloonStatisticsAsync(new BalloonStatsUpdate()),
            () => c.StartBalloonHintingAsync(), () => c.GetBalloonHintingStatusAsync(), () => c.StopBalloonHintingAsync(),
            () => c.PutBootSourceAsync(new BootSource()), () => c.PutCpuConfigAsync(new CpuConfig()),
            () => c.PutDriveAsync(new Drive { DriveId = "d1" }), () => c.PatchDriveAsync(new PartialDrive { DriveId = "d1" }),
            () => c.PutPmemAsync(new Pmem { Id = "p1" }), () => c.PatchPmemAsync(new PartialPmem { Id = "p1" }),
            () => c.PutLoggerAsync(new Logger()), () => c.GetMachineConfigAsync(),
            () => c.PutMachineConfigAsync(new MachineConfiguration()), () => c.PatchMachineConfigAsync(new MachineConfigurationUpdate()),
            () => c.PutMetricsAsync(new Metrics()),
            () => c.PutMmdsAsync(new JsonObject()), () => c.PatchMmdsAsync(new JsonObject()), () => c.GetMmdsAsync(),
            () => c.PutMmdsConfigAsync(new MmdsConfig()), () => c.PutEntropyAsync(new EntropyDevice()), () => c.PutSerialAsync(new SerialDevice()),
            () => c.PutMemoryHotplugAsync(new MemoryHotplugConfig()), () => c.PatchMemoryHotplugAsync(new MemoryHotplugSizeUpdate()),
            () => c.GetMemoryHotplugAsync(),
            () => c.PutNetworkInterfaceAsync(new NetworkInterface { IfaceId = "n1" }),
            () => c.PatchNetworkInterfaceAsync(new PartialNetworkInterface { IfaceId = "n1" }),
            () => c.CreateSnapshotAsync(new SnapshotCreateParams()), () => c.LoadSnapshotAsync(new SnapshotLoadParams()),
            () => c.GetVersionAsync(), () => c.ResumeAsync(), () => c.GetVmConfigAsync(), () => c.PutVsockAsync(new Vsock()),
        };
        foreach (var call in calls) await call();
        Assert.Equal(SwaggerOperations, server.Requests.Select(r => $"{r.Method} {r.Path}"));
    }

    [Fact]
    public async Task The_action_and_state_shortcuts_send_their_bodies()
    {
        using var server = new FakeApiServer(_ => (204, ""));
        using var c = new FirecrackerClient(server.SocketPath);
        await c.StartInstanceAsync();
        await c.SendCtrlAltDelAsync();
        await c.FlushMetricsAsync();
        await c.PauseAsync();
        await c.ResumeAsync();
        Assert.Equal(
        [
            """{"action_type":"InstanceStart"}""", """{"action_type":"SendCtrlAltDel"}""", """{"action_type":"FlushMetrics"}""",
            """{"state":"Paused"}""", """{"state":"Resumed"}""",
        ], server.Requests.Select(r => r.Body));
    }
}
