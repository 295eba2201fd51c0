using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using Flint.Client.Models;

namespace Flint.Client.Tests;

/// <summary>The client against a fake API server on a real Unix socket: requests, errors, deadlines, connection reuse.</summary>
public sealed class TransportTests
{
    private static readonly FirecrackerClientOptions Quick = new() { RequestTimeout = TimeSpan.FromMilliseconds(300) };

    [Fact]
    public async Task Requests_carry_the_method_path_and_json_body_firecracker_expects()
    {
        using var server = new FakeApiServer(_ => (204, ""));
        using var client = new FirecrackerClient(server.SocketPath);
        await client.PutDriveAsync(new Drive { DriveId = "rootfs", PathOnHost = "/r.ext4", IsRootDevice = true, IsReadOnly = false });
        await client.StartInstanceAsync();
        await client.StopBalloonHintingAsync();

        var put = server.Requests[0];
        Assert.Equal(("PUT", "/drives/rootfs"), (put.Method, put.Path));
        Assert.Equal("""{"drive_id":"rootfs","is_root_device":true,"is_read_only":false,"path_on_host":"/r.ext4"}""", put.Body);
        Assert.Equal("application/json", put.Headers["content-type"]);
        Assert.Equal(put.Body.Length.ToString(), put.Headers["content-length"]); // micro-http needs a length, not chunks
        Assert.Equal("localhost", put.Headers["host"]);
        Assert.Equal(("PUT", "/actions", """{"action_type":"InstanceStart"}"""), (server.Requests[1].Method, server.Requests[1].Path, server.Requests[1].Body));
        Assert.Equal(("PATCH", "/balloon/hinting/stop", ""), (server.Requests[2].Method, server.Requests[2].Path, server.Requests[2].Body));
    }

    [Fact]
    public async Task Ids_are_escaped_into_the_path()
    {
        using var server = new FakeApiServer(_ => (204, ""));
        using var client = new FirecrackerClient(server.SocketPath);
        await client.PutNetworkInterfaceAsync(new NetworkInterface { IfaceId = "../vm?x=1", HostDevName = "tap0" });
        Assert.Equal("/network-interfaces/..%2Fvm%3Fx%3D1", server.Requests.Single().Path);
        await Assert.ThrowsAsync<ArgumentException>(() => client.PutDriveAsync(new Drive { DriveId = "" }));
    }

    [Fact]
    public async Task Answers_are_read_into_the_models()
    {
        using var server = new FakeApiServer(r => r.Path switch
        {
            "/" => (200, SwaggerExamples.InstanceInfo),
            "/version" => (200, SwaggerExamples.Version),
            "/vm/config" => (200, SwaggerExamples.VmConfigWithMmdsV2),
            "/mmds" => (200, """{"latest":{"meta-data":{"ami-id":"ami-1"}}}"""),
            _ => FakeApiServer.Fault(400, "unexpected"),
        });
        using var client = new FirecrackerClient(server.SocketPath);
        Assert.Equal(InstanceStates.NotStarted, (await client.GetInstanceInfoAsync()).State);
        Assert.Equal("1.17.0-dev", (await client.GetVersionAsync()).Version);
        var config = await client.GetVmConfigAsync();
        Assert.Equal(MmdsVersions.V2, config.MmdsConfig!.Version);
        Assert.Equal("tap0", config.NetworkInterfaces!.Single().HostDevName);
        Assert.Equal("ami-1", (string?)(await client.GetMmdsAsync())!["latest"]!["meta-data"]!["ami-id"]);
    }

    [Fact]
    public async Task A_fault_becomes_a_typed_exception_with_the_fault_message()
    {
        using var server = new FakeApiServer(r => r.Path switch
        {
            "/vm" => FakeApiServer.Fault(400, "The requested operation is not supported before starting the microVM."),
            "/mmds" => FakeApiServer.Fault(404, "The MMDS data store is not initialized."),
            "/balloon" => (500, "<html>not json</html>"),
            _ => (503, ""),
        });
        using var client = new FirecrackerClient(server.SocketPath);

        var e = await Assert.ThrowsAsync<FirecrackerApiException>(() => client.PauseAsync());
        Assert.Equal(HttpStatusCode.BadRequest, e.StatusCode);
        Assert.Equal("The requested operation is not supported before starting the microVM.", e.FaultMessage);
        Assert.Equal(("PATCH", "/vm"), (e.Method, e.Path));

        e = await Assert.ThrowsAsync<FirecrackerApiException>(() => client.GetMmdsAsync());
        Assert.Equal((HttpStatusCode.NotFound, "The MMDS data store is not initialized."), (e.StatusCode, e.FaultMessage));

        e = await Assert.ThrowsAsync<FirecrackerApiException>(() => client.GetBalloonAsync()); // not Firecracker's JSON: the text as it came
        Assert.Equal((HttpStatusCode.InternalServerError, "<html>not json</html>"), (e.StatusCode, e.FaultMessage));

        e = await Assert.ThrowsAsync<FirecrackerApiException>(() => client.GetVersionAsync()); // no body: the reason phrase
        Assert.Equal((HttpStatusCode.ServiceUnavailable, "X"), (e.StatusCode, e.FaultMessage));
    }

    [Fact]
    public async Task An_answer_that_is_not_the_expected_json_is_a_client_exception()
    {
        using var server = new FakeApiServer(r => r.Path == "/machine-config" ? (200, "{\"vcpu_count\": \"two\"") : (200, "null"));
        using var client = new FirecrackerClient(server.SocketPath);
        var e = await Assert.ThrowsAsync<FirecrackerClientException>(() => client.GetMachineConfigAsync());
        Assert.Contains("GET /machine-config", e.Message);
        await Assert.ThrowsAsync<FirecrackerClientException>(() => client.GetVersionAsync());
    }

    [Fact]
    public async Task A_server_that_never_answers_is_a_timeout_within_the_deadline_and_the_client_recovers()
    {
        using var server = new FakeApiServer(r => r.Path == "/version" ? null : (200, SwaggerExamples.InstanceInfo));
        using var client = new FirecrackerClient(server.SocketPath, Quick);
        var sw = Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<TimeoutException>(() => client.GetVersionAsync());
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5), $"the call took {sw.Elapsed}");
        Assert.True(sw.Elapsed >= TimeSpan.FromMilliseconds(250), $"the call gave up early, after {sw.Elapsed}");
        Assert.Contains("GET /version", e.Message);
        // The stuck connection was dropped; the next call gets a new one and its answer. Under load the deadline can
        // pass before the first request got its connection at all: SocketsHttpHandler then finishes that connection
        // attempt and pools it unused, and the next call rides it (one accept; a clean-clone CI run saw it). Either
        // way no answer to the timed-out request can reach the next call.
        Assert.Equal("Firecracker", (await client.GetInstanceInfoAsync()).AppName);
        Assert.InRange(server.AcceptedConnections, 1, 2);
    }

    [Fact]
    public async Task Cancellation_by_the_caller_is_a_cancellation_not_a_timeout()
    {
        using var server = new FakeApiServer(_ => null);
        using var client = new FirecrackerClient(server.SocketPath);
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        var sw = Stopwatch.StartNew();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => client.GetInstanceInfoAsync(cts.Token));
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5), $"the call took {sw.Elapsed}");
    }

    [Fact]
    public async Task Every_endpoint_is_bounded_by_the_deadline()
    {
        using var server = new FakeApiServer(_ => null);
        using var client = new FirecrackerClient(server.SocketPath, new FirecrackerClientOptions { RequestTimeout = TimeSpan.FromMilliseconds(100) });
        var calls = new Func<Task>[]
        {
            () => client.PutBootSourceAsync(new BootSource { KernelImagePath = "k" }),
            () => client.PutMachineConfigAsync(new MachineConfiguration { VcpuCount = 1, MemSizeMib = 128 }),
            () => client.PatchMachineConfigAsync(new MachineConfigurationUpdate { VcpuCount = 2 }),
            () => client.PutVsockAsync(new Vsock { GuestCid = 3, UdsPath = "v" }),
            () => client.PutMmdsAsync(new JsonObject()),
            () => client.PatchMmdsAsync(new JsonObject()),
            () => client.CreateSnapshotAsync(new SnapshotCreateParams { MemFilePath = "m", SnapshotPath = "s" }),
            () => client.LoadSnapshotAsync(new SnapshotLoadParams { SnapshotPath = "s", MemFilePath = "m" }),
            () => client.GetBalloonStatisticsAsync(),
            () => client.GetMemoryHotplugAsync(),
        };
        var sw = Stopwatch.StartNew();
        foreach (var call in calls) await Assert.ThrowsAsync<TimeoutException>(call);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10), $"{calls.Length} calls took {sw.Elapsed}");
    }

    [Fact]
    public async Task A_missing_socket_fails_at_once()
    {
        using var client = new FirecrackerClient("/nonexistent/flint-client-test.sock");
        var sw = Stopwatch.StartNew();
        await Assert.ThrowsAsync<HttpRequestException>(() => client.GetInstanceInfoAsync());
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5), $"the call took {sw.Elapsed}");
    }

    [Fact]
    public async Task Sequential_calls_reuse_one_connection()
    {
        using var server = new FakeApiServer(_ => (200, SwaggerExamples.InstanceInfo));
        using var client = new FirecrackerClient(server.SocketPath);
        for (int i = 0; i < 50; i++) await client.GetInstanceInfoAsync();
        Assert.Equal(50, server.Requests.Count);
        Assert.Equal(1, server.AcceptedConnections);
    }

    [Fact]
    public async Task Concurrent_callers_share_one_client_safely()
    {
        using var server = new FakeApiServer(r => r.Method == "GET" ? (200, SwaggerExamples.InstanceInfo) : (204, ""));
        using var client = new FirecrackerClient(server.SocketPath);
        var tasks = Enumerable.Range(0, 64).Select(i => Task.Run(async () =>
        {
            if (i % 2 == 0) await client.PutDriveAsync(new Drive { DriveId = $"d{i}", PathOnHost = $"/p{i}", IsRootDevice = false });
            else Assert.Equal("anonymous-instance", (await client.GetInstanceInfoAsync()).Id);
        }));
        await Task.WhenAll(tasks);
        Assert.Equal(64, server.Requests.Count);
        Assert.Equal(32, server.Requests.Select(r => r.Path).Where(p => p.StartsWith("/drives/d")).Distinct().Count());
        Assert.Equal(1, server.AcceptedConnections);
    }

    [Fact]
    public async Task A_server_that_closes_each_connection_is_reconnected_to()
    {
        using var server = new FakeApiServer(_ => (200, SwaggerExamples.InstanceInfo), closeAfterEachAnswer: true);
        using var client = new FirecrackerClient(server.SocketPath);
        for (int i = 0; i < 5; i++) await client.GetInstanceInfoAsync();
        Assert.Equal(5, server.AcceptedConnections);
    }

    [Fact]
    public async Task An_answer_past_the_size_limit_is_refused_not_buffered()
    {
        var big = "{\"k\":\"" + new string('a', 64 * 1024) + "\"}";
        using var server = new FakeApiServer(_ => (200, big));
        using var client = new FirecrackerClient(server.SocketPath, new FirecrackerClientOptions { MaxResponseBytes = 4096 });
        await Assert.ThrowsAsync<HttpRequestException>(() => client.GetMmdsAsync());
    }

    [Fact]
    public void Options_are_checked()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new FirecrackerClient("/s", new FirecrackerClientOptions { RequestTimeout = TimeSpan.Zero }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new FirecrackerClient("/s", new FirecrackerClientOptions { MaxConnections = 0 }));
        Assert.Throws<ArgumentException>(() => new FirecrackerClient(""));
    }
}
