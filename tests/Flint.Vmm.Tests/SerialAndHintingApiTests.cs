using System.Net.Sockets;
using System.Text.Json;

namespace Flint.Vmm.Tests;

/// <summary>
/// PUT /serial and the balloon's free page fields and /balloon/hinting/* through the real flint process, before the
/// start (all that runs without KVM): Firecracker main's swagger (SerialDevice, Balloon, BalloonStartCmd), its
/// request/serial.rs and request/balloon.rs parsers and rpc_interface.rs's pre-boot rules. After the start the same
/// endpoints are covered in-process (<see cref="ParityBehaviourTests"/>) and by a guest run
/// (<see cref="FreePageReportingKvmTests"/>).
/// </summary>
public sealed class SerialAndHintingApiTests : IDisposable
{
    private readonly string _dir = Repo.TempDir();

    public void Dispose() => Directory.Delete(_dir, true);

    private static string Fault(string body) => JsonDocument.Parse(body).RootElement.GetProperty("fault_message").GetString()!;

    private (Socket Api, System.Diagnostics.Process Flint) Start(params string[] extra)
    {
        string sock = Path.Combine(_dir, "api.sock");
        var p = Repo.StartWithApi(sock, extra);
        var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        s.Connect(new UnixDomainSocketEndPoint(sock));
        return (s, p);
    }

    private static void Stop(Socket s, System.Diagnostics.Process p)
    {
        s.Dispose();
        if (!p.HasExited) p.Kill();
        p.WaitForExit();
    }

    /// Firecracker: request/serial.rs (parse_put_serial, its tests), vmm_config/serial.rs (deny_unknown_fields),
    /// resources.rs (serial_config is serde(skip): not in GET /vm/config).
    [Fact]
    public void Serial_put_takes_firecrackers_body_and_refuses_anything_else()
    {
        var (s, p) = Start();
        try
        {
            string outPath = Path.Combine(_dir, "serial.out");
            Assert.Equal((204, ""), ApiHttp.Request(s, "PUT", "/serial", $"{{\"serial_out_path\": \"{outPath}\"}}"));
            Assert.Equal(204, ApiHttp.Request(s, "PUT", "/serial",
                $"{{\"serial_out_path\": \"{outPath}\", \"rate_limiter\": {{\"size\": 1000, \"one_time_burst\": 0, \"refill_time\": 100}}}}").Status);
            Assert.Equal(204, ApiHttp.Request(s, "PUT", "/serial", "{}").Status); // both fields are optional
            // Firecracker opens the file at InstanceStart, not at PUT: a path that cannot be opened is still taken.
            Assert.Equal(204, ApiHttp.Request(s, "PUT", "/serial", "{\"serial_out_path\": \"/nonexistent/dir/serial\"}").Status);

            var r = ApiHttp.Request(s, "PUT", "/serial", "{\"serial_out_path\": \"/tmp/x\", \"baud\": 9600}");
            Assert.Equal(400, r.Status);
            Assert.StartsWith("An error occurred when deserializing the json body of a request: unknown field `baud`, expected `serial_out_path` or `rate_limiter`", Fault(r.Body));
            r = ApiHttp.Request(s, "PUT", "/serial", "{\"serial_out_path\": 5}");
            Assert.Equal(400, r.Status);
            Assert.Contains("invalid type: integer `5`, expected a string", Fault(r.Body));
            r = ApiHttp.Request(s, "PUT", "/serial", "{\"rate_limiter\": {\"size\": 1}}");
            Assert.Equal(400, r.Status);
            Assert.Contains("missing field `refill_time`", Fault(r.Body));
            r = ApiHttp.Request(s, "PUT", "/serial", null);
            Assert.Equal((400, "Empty PUT request."), (r.Status, Fault(r.Body)));
            r = ApiHttp.Request(s, "GET", "/serial");
            Assert.Equal(400, r.Status);

            var cfg = ApiHttp.Request(s, "GET", "/vm/config");
            Assert.Equal(200, cfg.Status);
            Assert.DoesNotContain("serial", cfg.Body);
            Assert.False(File.Exists(outPath));
        }
        finally { Stop(s, p); }
    }

    /// Firecracker: swagger Balloon (free_page_hinting, free_page_reporting), device.rs BalloonConfig (always
    /// serialised), rpc_interface.rs (the hinting actions are refused before the start).
    [Fact]
    public void Balloon_free_page_fields_and_hinting_before_the_start()
    {
        var (s, p) = Start();
        try
        {
            Assert.Equal(204, ApiHttp.Request(s, "PUT", "/balloon",
                "{\"amount_mib\": 0, \"deflate_on_oom\": false, \"free_page_hinting\": true, \"free_page_reporting\": true}").Status);
            var b = JsonDocument.Parse(ApiHttp.Request(s, "GET", "/balloon").Body).RootElement;
            Assert.True(b.GetProperty("free_page_hinting").GetBoolean());
            Assert.True(b.GetProperty("free_page_reporting").GetBoolean());
            var vm = JsonDocument.Parse(ApiHttp.Request(s, "GET", "/vm/config").Body).RootElement.GetProperty("balloon");
            Assert.True(vm.GetProperty("free_page_hinting").GetBoolean());
            Assert.True(vm.GetProperty("free_page_reporting").GetBoolean());

            var r = ApiHttp.Request(s, "PUT", "/balloon", "{\"amount_mib\": 0, \"deflate_on_oom\": false, \"free_page_hinting\": \"yes\"}");
            Assert.Equal(400, r.Status);
            Assert.Contains("expected a boolean", Fault(r.Body));

            foreach (var (m, path, body) in new (string, string, string?)[]
                     {
                         ("PATCH", "/balloon/hinting/start", null), ("PATCH", "/balloon/hinting/start", "{\"acknowledge_on_stop\": false}"),
                         ("GET", "/balloon/hinting/status", null), ("PATCH", "/balloon/hinting/stop", null),
                     })
            {
                r = ApiHttp.Request(s, m, path, body);
                Assert.Equal(400, r.Status);
                Assert.Equal("The requested operation is not supported before starting the microVM.", Fault(r.Body));
            }
            r = ApiHttp.Request(s, "GET", "/balloon/hinting/other");
            Assert.Equal("Unrecognized GET request path `/hinting/other`.", Fault(r.Body));
            r = ApiHttp.Request(s, "PATCH", "/balloon/hinting/start", "{\"acknowledge_on_stop\": \"no\"}");
            Assert.Contains("expected a boolean", Fault(r.Body));
        }
        finally { Stop(s, p); }
    }
}
