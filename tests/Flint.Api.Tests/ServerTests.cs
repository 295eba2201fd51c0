using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Flint.Sys;
using Flint.Vmm.Rpc;

namespace Flint.Api.Tests;

public class ServerTests
{
    private static string Esc(string p) => p.Replace("\\", "\\\\");

    [Fact]
    public void Getting_started_sequence()
    {
        using var env = new Env(server: true);
        using var c = env.Connect();

        var r = c.Call("GET", "/");
        Assert.Equal(200, r.Status);
        Assert.Equal("", r.Reason); // micro-http: "HTTP/1.1 200 "
        Assert.Equal("Firecracker API", r.Headers["Server"]);
        Assert.Equal("keep-alive", r.Headers["Connection"]);
        Assert.Equal("application/json", r.Headers["Content-Type"]);
        var info = JsonDocument.Parse(r.Body!).RootElement;
        Assert.Equal("test-vm", info.GetProperty("id").GetString());
        Assert.Equal("Not started", info.GetProperty("state").GetString());
        Assert.Equal("1.2.3", info.GetProperty("vmm_version").GetString());
        Assert.Equal("Firecracker", info.GetProperty("app_name").GetString());

        r = c.Call("PUT", "/boot-source", $"{{\"kernel_image_path\": \"{Esc(env.Kernel)}\", \"boot_args\": \"console=ttyS0 reboot=k panic=1\"}}");
        Assert.Equal(204, r.Status);
        Assert.Equal("", r.Reason);
        Assert.Null(r.Body);
        Assert.False(r.Headers.ContainsKey("Content-Length"));

        r = c.Call("PUT", "/drives/rootfs", $"{{\"drive_id\": \"rootfs\", \"path_on_host\": \"{Esc(env.Rootfs)}\", \"is_root_device\": true, \"is_read_only\": false}}");
        Assert.Equal(204, r.Status);
        r = c.Call("PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 256}");
        Assert.Equal(204, r.Status);

        r = c.Call("GET", "/machine-config");
        Assert.Equal(200, r.Status);
        var mc = JsonDocument.Parse(r.Body!).RootElement;
        Assert.Equal(2, mc.GetProperty("vcpu_count").GetInt32());
        Assert.Equal(256, mc.GetProperty("mem_size_mib").GetInt32());

        r = c.Call("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
        Assert.Equal(204, r.Status);
        Assert.NotNull(env.Vm);
        Assert.Equal(256, env.StartedWith!.MachineConfig!.MemSizeMib);
        Assert.Equal("rootfs", env.StartedWith.Drives.Single().DriveId);

        Assert.Equal("Running", JsonDocument.Parse(c.Call("GET", "/").Body!).RootElement.GetProperty("state").GetString());
        Assert.Equal(204, c.Call("PATCH", "/vm", "{\"state\": \"Paused\"}").Status);
        Assert.True(env.Vm!.IsPaused);
        Assert.Equal("Paused", JsonDocument.Parse(c.Call("GET", "/").Body!).RootElement.GetProperty("state").GetString());
        Assert.Equal(204, c.Call("PATCH", "/vm", "{\"state\": \"Resumed\"}").Status);
        Assert.Equal("Running", JsonDocument.Parse(c.Call("GET", "/").Body!).RootElement.GetProperty("state").GetString());

        Assert.Equal(204, c.Call("PUT", "/actions", "{\"action_type\": \"SendCtrlAltDel\"}").Status);
        Assert.Equal(1, env.Vm.CtrlAltDels);

        Assert.Equal(204, c.Call("PATCH", "/drives/rootfs", $"{{\"drive_id\": \"rootfs\", \"path_on_host\": \"{Esc(env.Disk2)}\"}}").Status);
        Assert.Equal(("rootfs", env.Disk2), env.Vm.Patches.Single());

        foreach (var (m, p, b) in new[]
        {
            ("PUT", "/boot-source", $"{{\"kernel_image_path\": \"{Esc(env.Kernel)}\"}}"),
            ("PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 128}"),
            ("PATCH", "/machine-config", "{\"vcpu_count\": 1}"),
            ("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}"),
            ("PUT", "/logger", "{\"level\": \"Info\"}"),
            ("PUT", "/vsock", "{\"guest_cid\": 3, \"uds_path\": \"/tmp/v.sock\"}"),
        })
        {
            r = c.Call(m, p, b);
            Assert.Equal(400, r.Status);
            Assert.Equal("The requested operation is not supported after starting the microVM.", r.Fault);
        }
        // After the start PUT /drives is a PCI hotplug (Firecracker 1.16), which this VM (no --enable-pci) refuses.
        r = c.Call("PUT", "/drives/rootfs", $"{{\"drive_id\": \"rootfs\", \"path_on_host\": \"{Esc(env.Rootfs)}\", \"is_root_device\": true}}");
        Assert.Equal((400, "PCI is not enabled"), (r.Status, r.Fault));
        // /vm/config reflects the patched drive.
        var cfg = JsonDocument.Parse(c.Call("GET", "/vm/config").Body!).RootElement;
        Assert.Equal(env.Disk2, cfg.GetProperty("drives")[0].GetProperty("path_on_host").GetString());
    }

    [Fact]
    public void Version_and_VM_config()
    {
        using var env = new Env(server: true);
        using var c = env.Connect();
        var r = c.Call("GET", "/version");
        Assert.Equal("{\"firecracker_version\":\"1.2.3\"}", r.Body);
        var cfg = JsonDocument.Parse(c.Call("GET", "/vm/config").Body!).RootElement;
        Assert.Equal(1, cfg.GetProperty("machine-config").GetProperty("vcpu_count").GetInt32());
        Assert.Equal(128, cfg.GetProperty("machine-config").GetProperty("mem_size_mib").GetInt32());
    }

    [Theory]
    [InlineData("GET", "/foo", null, 400, "Invalid request method and/or path: GET foo.")]
    [InlineData("DELETE", "/", null, 400, "Invalid request method and/or path: DELETE .")]
    [InlineData("GET", "/machine-config", "{}", 400, "GET request cannot have a body.")]
    [InlineData("PUT", "/machine-config", null, 400, "Empty PUT request.")]
    [InlineData("PATCH", "/machine-config", null, 400, "Empty PATCH request.")]
    [InlineData("PATCH", "/machine-config", "{}", 400, "Empty PATCH request.")]
    [InlineData("PUT", "/drives/rootfs", "{\"drive_id\": \"other\", \"path_on_host\": \"/x\", \"is_root_device\": false}", 400, "The id from the path does not match the id from the body!")]
    [InlineData("PUT", "/drives/bad-id", "{\"drive_id\": \"bad-id\", \"is_root_device\": false}", 400, "API Resource IDs can only contain alphanumeric characters and underscores.")]
    [InlineData("PUT", "/network-interfaces/eth0", "{\"iface_id\": \"eth1\", \"host_dev_name\": \"tap0\"}", 400, "The id from the path [eth0] does not match the id from the body [eth1]!")]
    [InlineData("PUT", "/machine-config", "{\"mem_size_mib\": 128}", 400, "An error occurred when deserializing the json body of a request: missing field `vcpu_count` at line 1 column 21.")]
    [InlineData("PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 128, \"foo\": 1}", 400, "An error occurred when deserializing the json body of a request: unknown field `foo`, expected one of `vcpu_count`, `mem_size_mib`, `smt`, `cpu_template`, `track_dirty_pages`, `huge_pages` at line 1 column 44.")]
    [InlineData("PUT", "/machine-config", "{\"vcpu_count\": \"2\", \"mem_size_mib\": 128}", 400, "An error occurred when deserializing the json body of a request: invalid type: string \"2\", expected u8 at line 1 column 18.")]
    [InlineData("PUT", "/machine-config", "{\"vcpu_count\": 0, \"mem_size_mib\": 128}", 400, "Machine config error: The number of vCPUs must be greater than 0, less than 32 and must be 1 or an even number if SMT is enabled.")]
    [InlineData("PUT", "/machine-config", "{\"vcpu_count\": 33, \"mem_size_mib\": 128}", 400, "Machine config error: The number of vCPUs must be greater than 0, less than 32 and must be 1 or an even number if SMT is enabled.")]
    [InlineData("PUT", "/machine-config", "{\"vcpu_count\": 3, \"mem_size_mib\": 128, \"smt\": true}", 400, "Machine config error: The number of vCPUs must be greater than 0, less than 32 and must be 1 or an even number if SMT is enabled.")]
    [InlineData("PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 0}", 400, "Machine config error: The memory size (MiB) is either 0, or not a multiple of the configured page size.")]
    [InlineData("PUT", "/machine-config", "{\"vcpu_count\": 256, \"mem_size_mib\": 128}", 400, "An error occurred when deserializing the json body of a request: invalid value: integer `256`, expected u8 at line 1 column 18.")]
    [InlineData("PUT", "/actions", "{\"action_type\": \"Reboot\"}", 400, "An error occurred when deserializing the json body of a request: unknown variant `Reboot`, expected one of `FlushMetrics`, `InstanceStart`, `SendCtrlAltDel` at line 1 column 24.")]
    [InlineData("PUT", "/actions", "{\"action_type\": \"SendCtrlAltDel\"}", 400, "The requested operation is not supported before starting the microVM.")]
    [InlineData("PATCH", "/vm", "{\"state\": \"Paused\"}", 400, "The requested operation is not supported before starting the microVM.")]
    [InlineData("PATCH", "/drives/rootfs", "{\"drive_id\": \"rootfs\"}", 400, "The requested operation is not supported before starting the microVM.")]
    [InlineData("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}", 400, "Start microvm error: Cannot start microvm without kernel configuration.")]
    [InlineData("PUT", "/snapshot/load", "{\"snapshot_path\": \"s\", \"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"m\"}}", 400, "Load snapshot error: this VMM cannot load snapshots.")]
    [InlineData("PUT", "/snapshot/create", "{\"snapshot_path\": \"s\", \"mem_file_path\": \"m\"}", 400, "The requested operation is not supported before starting the microVM.")]
    [InlineData("PUT", "/snapshot/other", "{}", 400, "Invalid request method and/or path: PUT /snapshot/other.")]
    [InlineData("PUT", "/boot-source", "{\"kernel_image_path\": 1", 400, "An error occurred when deserializing the json body of a request: EOF while parsing an object at line 1 column 23.")]
    [InlineData("GET", "/balloon", null, 400, "Balloon config error: No balloon device found.")]
    [InlineData("PATCH", "/mmds", "{\"a\": 1}", 400, "MMDS error: The MMDS data store is not initialized.")]
    public void Error_paths_answer_their_fault_and_change_nothing(string method, string path, string? body, int status, string fault)
    {
        using var env = new Env(server: true);
        using var c = env.Connect();
        string before = env.ConfigJson;
        var r = c.Call(method, path, body);
        Assert.Equal(status, r.Status);
        Assert.Equal(fault, r.Fault);
        Assert.Equal(before, env.ConfigJson);
        // The connection stays usable after an API-level error.
        Assert.Equal(200, c.Call("GET", "/").Status);
    }

    [Fact]
    public void Payload_over_limit()
    {
        using var env = new Env(server: true, maxPayload: 100);
        using var c = env.Connect();
        string body = "{\"vcpu_count\": 2, \"mem_size_mib\": 128" + new string(' ', 200) + "}";
        var r = c.Call("PUT", "/machine-config", body);
        Assert.Equal(400, r.Status);
        Assert.Equal($"Request payload with size {Encoding.UTF8.GetByteCount(body)} is larger than the limit of 100 allowed by server.", r.Fault);
        Assert.Equal(200, c.Call("GET", "/").Status);
        Assert.Equal(1, JsonDocument.Parse(c.Call("GET", "/machine-config").Body!).RootElement.GetProperty("vcpu_count").GetInt32());
    }

    [Fact]
    public void Default_limit_is_51200_and_bodies_up_to_it_work()
    {
        using var env = new Env(server: true);
        using var c = env.Connect();
        string head = "{\"vcpu_count\": 2, \"mem_size_mib\": 128";
        string body = head + new string(' ', 51200 - head.Length - 1) + "}";
        Assert.Equal(51200, body.Length);
        Assert.Equal(204, c.Call("PUT", "/machine-config", body).Status);
        var r = c.Call("PUT", "/machine-config", body + " ");
        Assert.Equal("Request payload with size 51201 is larger than the limit of 51200 allowed by server.", r.Fault);
    }

    [Fact]
    public void Pipelined_requests_in_one_write()
    {
        using var env = new Env(server: true);
        using var c = env.Connect();
        string all = Client.Request("PUT", "/machine-config", "{\"vcpu_count\": 4, \"mem_size_mib\": 512}")
                   + Client.Request("GET", "/machine-config")
                   + Client.Request("GET", "/nope")
                   + Client.Request("GET", "/version");
        c.Send(all);
        Assert.Equal(204, c.Read().Status);
        var mc = c.Read();
        Assert.Equal(200, mc.Status);
        Assert.Contains("\"vcpu_count\":4", mc.Body);
        Assert.Equal("Invalid request method and/or path: GET nope.", c.Read().Fault);
        Assert.Contains("firecracker_version", c.Read().Body);
    }

    [Fact]
    public void Request_split_across_many_writes()
    {
        using var env = new Env(server: true);
        using var c = env.Connect();
        var bytes = Encoding.UTF8.GetBytes(Client.Request("PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 64}"));
        foreach (var b in bytes) { c.Send([b]); }
        Assert.Equal(204, c.Read().Status);
    }

    [Fact]
    public void Many_connections_over_time()
    {
        using var env = new Env(server: true);
        for (int i = 0; i < 50; i++)
        {
            using var c = env.Connect();
            Assert.Equal(200, c.Call("GET", "/").Status);
        }
        var sw = Stopwatch.StartNew();
        while (env.Server!.ConnectionCount > 0 && sw.ElapsedMilliseconds < 5000) Thread.Sleep(10);
        Assert.Equal(0, env.Server.ConnectionCount);
    }

    [Theory]
    [InlineData("GARBAGE\r\n\r\n")]
    [InlineData("GET / HTTP/2.0\r\n\r\n")]
    [InlineData("GET /\r\n\r\n")]
    [InlineData("GET  / HTTP/1.1\r\n\r\n")]
    [InlineData("get / HTTP/1.1\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\nBad Header\r\n\r\n")]
    [InlineData("GET / HTTP/1.1\r\n: novalue\r\n\r\n")]
    [InlineData("PUT /machine-config HTTP/1.1\r\nContent-Length: abc\r\n\r\n")]
    [InlineData("PUT /machine-config HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n")]
    [InlineData("\u0001\u0002\u0003 junk\r\n")]
    public void Malformed_requests_are_refused(string raw)
    {
        using var env = new Env(server: true);
        using var c = env.Connect();
        c.Send(raw);
        var r = c.Read();
        Assert.Equal(400, r.Status);
        Assert.False(string.IsNullOrEmpty(r.Fault));
        Assert.True(c.IsClosedByServer());
        using var c2 = env.Connect();
        Assert.Equal(200, c2.Call("GET", "/").Status);
    }

    [Fact]
    public void Chunked_bodies_are_refused()
    {
        using var env = new Env(server: true);
        using var c = env.Connect();
        c.Send("PUT /machine-config HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
        var r = c.Read();
        Assert.Equal(400, r.Status);
        Assert.Equal("Invalid header. Reason: Unsupported feature. Key: Transfer-Encoding; Value: chunked", r.Fault);
    }

    [Fact]
    public void Oversized_headers_are_refused()
    {
        using var env = new Env(server: true);
        using var c = env.Connect();
        c.Send("GET / HTTP/1.1\r\nX-Pad: " + new string('a', 20000) + "\r\n\r\n");
        var r = c.Read();
        Assert.Equal(400, r.Status);
        Assert.Equal("Invalid request.", r.Fault);
    }

    [Fact]
    public void Connection_close_and_HTTP_1_0()
    {
        using var env = new Env(server: true);
        using (var c = env.Connect())
        {
            c.Send("GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
            var r = c.Read();
            Assert.Equal(200, r.Status);
            Assert.Equal("keep-alive", r.Headers["Connection"]); // micro-http's header on every answer
            Assert.True(c.IsClosedByServer());                   // but the client asked to close
        }
        using (var c = env.Connect())
        {
            // micro-http keeps HTTP/1.0 connections open too.
            c.Send("GET /version HTTP/1.0\r\n\r\n");
            Assert.Equal(200, c.Read().Status);
            Assert.Equal(200, c.Call("GET", "/").Status);
        }
    }

    [Fact]
    public void Expect_100_continue()
    {
        using var env = new Env(server: true);
        using var c = env.Connect();
        string body = "{\"vcpu_count\": 2, \"mem_size_mib\": 64}";
        c.Send($"PUT /machine-config HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: {body.Length}\r\n\r\n");
        const string expected = "HTTP/1.1 100 \r\nServer: Firecracker API\r\nConnection: keep-alive\r\n\r\n";
        var cont = new byte[expected.Length];
        int got = 0;
        while (got < cont.Length) got += c.S.Receive(cont, got, cont.Length - got, SocketFlags.None);
        Assert.Equal(expected, Encoding.ASCII.GetString(cont));
        c.Send(body);
        Assert.Equal(204, c.Read().Status);
    }

    [Fact]
    public void API_thread_is_named_fc_api()
    {
        string? name = null;
        var h = new LambdaHandler(a => { name = Thread.CurrentThread.Name; return ApiResponse.NoContent; });
        using var env = new Env(server: true, handler: h);
        using var c = env.Connect();
        Assert.Equal(204, c.Call("GET", "/").Status);
        Assert.Equal("fc_api", name);
    }

    [Fact]
    public void Handler_exceptions_become_500_and_server_survives()
    {
        var h = new LambdaHandler(a => a is GetVersion ? throw new InvalidOperationException("boom") : ApiResponse.Ok("{}"));
        using var env = new Env(server: true, handler: h);
        using var c = env.Connect();
        var r = c.Call("GET", "/version");
        Assert.Equal(500, r.Status);
        Assert.Equal(VmmController.InternalErrorMessage, r.Fault); // no .NET text reaches the client
        Assert.DoesNotContain("boom", r.Body);
        Assert.Equal(200, c.Call("GET", "/").Status);
    }

    [Fact]
    public void Queued_handler_runs_requests_on_the_VMM_thread()
    {
        using var env0 = new Env();
        using var queued = new QueuedApiHandler(env0.Controller);
        using var server = new ApiServer(env0.Sock, 51200, queued);
        server.Start();
        var stop = false;
        int handled = 0;
        var vmmThread = new Thread(() =>
        {
            using var ep = new Epoll();
            ep.Add(queued.Fd, 1);
            var evs = new EpollEvent[4];
            while (!Volatile.Read(ref stop))
            {
                if (ep.Wait(evs, 50) > 0) Interlocked.Add(ref handled, queued.ProcessPending());
            }
        })
        { Name = "fc_vmm" };
        vmmThread.Start();
        try
        {
            using var c = env0.Connect();
            Assert.Equal(204, c.Call("PUT", "/boot-source", $"{{\"kernel_image_path\": \"{Esc(env0.Kernel)}\"}}").Status);
            Assert.Equal(204, c.Call("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}").Status);
            Assert.Equal("Running", JsonDocument.Parse(c.Call("GET", "/").Body!).RootElement.GetProperty("state").GetString());
            // ProcessPending answers each request before it returns its count: the client can be ahead of the sum.
            var sw = System.Diagnostics.Stopwatch.StartNew();
            while (Volatile.Read(ref handled) < 2 && sw.ElapsedMilliseconds < 5000) Thread.Sleep(1);
            Assert.True(Volatile.Read(ref handled) >= 2);
        }
        finally
        {
            Volatile.Write(ref stop, true);
            vmmThread.Join();
        }
    }

    [Fact]
    public void Dispose_removes_the_socket_file()
    {
        var env = new Env(server: true);
        Assert.True(File.Exists(env.Sock));
        env.Server!.Dispose();
        Assert.False(File.Exists(env.Sock));
        env.Dispose();
    }

    private sealed class LambdaHandler(Func<VmmAction, ApiResponse> f) : IApiHandler
    {
        public ApiResponse Handle(VmmAction action) => f(action);
    }
}
