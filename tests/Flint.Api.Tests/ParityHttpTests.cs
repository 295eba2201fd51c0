using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Flint.Vmm.Metrics;
using Flint.Vmm.Rpc;

namespace Flint.Api.Tests;

/// <summary>
/// Firecracker's routing and HTTP layer, ported from its own tests: micro-http's exact answers (status line, headers,
/// body) for what it refuses, Firecracker's route table and its wording for paths it does not serve, and the
/// Deprecation header with its metric. Each test names the Firecracker (or micro-http) file and test it comes from.
/// Byte-exact comparisons go over a real Unix socket.
/// </summary>
public class ParityHttpTests
{
    private const string Head400 = "HTTP/1.1 400 \r\nServer: Firecracker API\r\nConnection: keep-alive\r\nContent-Type: application/json\r\n";

    /// <summary>Sends <paramref name="raw"/> and returns everything the server answers within a short while.</summary>
    private static string Exchange(Env env, string raw, int expectBytes)
    {
        using var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        s.Connect(new UnixDomainSocketEndPoint(env.Sock));
        s.ReceiveTimeout = 5000;
        s.Send(Encoding.UTF8.GetBytes(raw));
        var got = new List<byte>();
        var buf = new byte[4096];
        while (got.Count < expectBytes)
        {
            int n;
            try { n = s.Receive(buf); } catch (SocketException) { break; }
            if (n == 0) break;
            got.AddRange(buf.AsSpan(0, n).ToArray());
        }
        return Encoding.UTF8.GetString(got.ToArray());
    }

    private static string MicroHttpError(string message)
    {
        string body = $"{{ \"error\": \"{message}\nAll previous unanswered requests will be dropped.\" }}";
        return Head400 + $"Content-Length: {Encoding.UTF8.GetByteCount(body)}\r\n\r\n" + body;
    }

    private static string FaultAnswer(int status, string message)
    {
        string body = $"{{\"fault_message\":{JsonSerializer.Serialize(message)}}}";
        return $"HTTP/1.1 {status} \r\nServer: Firecracker API\r\nConnection: keep-alive\r\nContent-Type: application/json\r\n" +
               $"Content-Length: {Encoding.UTF8.GetByteCount(body)}\r\n\r\n" + body;
    }

    // micro-http src/server.rs: test_set_payload_size.
    [Fact]
    public void Payload_over_the_limit_is_micro_https_400_byte_for_byte()
    {
        using var env = new Env(server: true, maxPayload: 4);
        string expected = MicroHttpError("Request payload with size 5 is larger than the limit of 4 allowed by server.");
        string got = Exchange(env, "PATCH /machine-config HTTP/1.1\r\nContent-Length: 5\r\nContent-Type: application/json\r\n\r\naaaaa", expected.Length);
        Assert.Equal(expected, got);
    }

    // micro-http src/server.rs: test_connection_size_limit_exceeded (the default limit, 51200).
    [Fact]
    public void Payload_over_the_default_limit_is_micro_https_400_byte_for_byte()
    {
        using var env = new Env(server: true);
        string expected = MicroHttpError("Request payload with size 51201 is larger than the limit of 51200 allowed by server.");
        string got = Exchange(env, "PATCH /machine-config HTTP/1.1\r\nContent-Length: 51201\r\nContent-Type: application/json\r\n\r\naaaaa", expected.Length);
        Assert.Equal(expected, got);
    }

    // micro-http src/server.rs: test_wait_parse_error.
    [Fact]
    public void A_bad_content_length_is_micro_https_400_byte_for_byte()
    {
        using var env = new Env(server: true);
        string expected = MicroHttpError("Invalid header. Reason: Invalid value. Key:Content-Length; Value: alpha");
        string got = Exchange(env, "PATCH /machine-config HTTP/1.1\r\nContent-Length: alpha\r\nContent-Type: application/json\r\n\r\nwhatever body", expected.Length);
        Assert.Equal(expected, got);
    }

    // micro-http src/common/mod.rs: Method::try_from ("Unsupported HTTP method.") answered by server.rs ClientConnection::read.
    [Theory]
    [InlineData("POST")]
    [InlineData("HEAD")]
    [InlineData("OPTIONS")]
    public void An_unsupported_method_is_answered_at_the_http_layer(string method)
    {
        using var env = new Env(server: true);
        string expected = MicroHttpError("Invalid HTTP Method: Unsupported HTTP method.");
        Assert.Equal(expected, Exchange(env, $"{method} /actions HTTP/1.1\r\n\r\n", expected.Length));
    }

    // micro-http src/request.rs: test_into_request_line (bad version, empty URI, missing parts).
    [Theory]
    [InlineData("GET / HTTP/2.0\r\n\r\n", "Invalid HTTP Version: Unsupported HTTP version.")]
    [InlineData("GET  HTTP/1.1\r\n\r\n", "Invalid URI: Empty URI not allowed.")]
    [InlineData("GET /\r\n\r\n", "Invalid request.")]
    public void A_bad_request_line_is_answered_at_the_http_layer(string raw, string message)
    {
        using var env = new Env(server: true);
        string expected = MicroHttpError(message);
        Assert.Equal(expected, Exchange(env, raw, expected.Length));
    }

    // firecracker src/firecracker/src/api_server/parsed_request.rs: test_error_into_response (the header shape) and
    // tests/integration_tests/functional/test_api.py (unknown paths: "Invalid request method and/or path").
    [Fact]
    public void An_unknown_path_is_named_by_its_first_token_in_firecrackers_answer()
    {
        using var env = new Env(server: true);
        string expected = FaultAnswer(400, "Invalid request method and/or path: GET nonexistent.");
        Assert.Equal(expected, Exchange(env, "GET /nonexistent/deeper HTTP/1.1\r\n\r\n", expected.Length));
    }

    // firecracker parsed_request.rs: test_convert_to_response (VmmData::Empty is a bare 204).
    [Fact]
    public void A_204_is_firecrackers_bare_answer()
    {
        using var env = new Env(server: true);
        const string expected = "HTTP/1.1 204 \r\nServer: Firecracker API\r\nConnection: keep-alive\r\n\r\n";
        string body = "{\"vcpu_count\": 2, \"mem_size_mib\": 256}";
        Assert.Equal(expected, Exchange(env, $"PUT /machine-config HTTP/1.1\r\nContent-Length: {body.Length}\r\n\r\n{body}", expected.Length));
    }

    // firecracker parsed_request.rs: test_convert_to_response (200 with a JSON body).
    [Fact]
    public void A_200_carries_firecrackers_headers()
    {
        using var env = new Env(server: true);
        using var c = env.Connect();
        var r = c.Call("GET", "/machine-config");
        Assert.Equal(200, r.Status);
        Assert.Equal("", r.Reason);
        Assert.Equal("Firecracker API", r.Headers["Server"]);
        Assert.Equal("keep-alive", r.Headers["Connection"]);
        Assert.Equal("application/json", r.Headers["Content-Type"]);
        Assert.False(r.Headers.ContainsKey("Deprecation"));
    }

    // micro-http src/server.rs: SERVER_FULL_ERROR_MESSAGE.
    [Fact]
    public void The_server_full_answer_is_micro_https_bytes() =>
        Assert.Equal("HTTP/1.1 503\r\nServer: Firecracker API\r\nConnection: close\r\nContent-Length: 40\r\n\r\n{ \"error\": \"Too many open connections\" }",
            Encoding.ASCII.GetString(HttpResponseWriter.ServerFull));

    // firecracker parsed_request.rs: ParsedRequest::try_from (the match on method, first token and body) and the
    // per-resource parsers in api_server/request/*.rs for their sub-path wording.
    [Theory]
    [InlineData("GET", "/nonexistent", null, "Invalid request method and/or path: GET nonexistent.")]
    [InlineData("GET", "/vm", null, "Invalid request method and/or path: GET vm.")]
    [InlineData("PATCH", "/boot-source", "{}", "Invalid request method and/or path: PATCH boot-source.")]
    [InlineData("PATCH", "/logger", "{\"level\": \"Error\"}", "Invalid request method and/or path: PATCH logger.")]
    [InlineData("PUT", "/", "{}", "Invalid request method and/or path: PUT .")]
    [InlineData("DELETE", "/", null, "Invalid request method and/or path: DELETE .")]
    [InlineData("DELETE", "/drives/x", "{}", "Empty Delete request.")]
    [InlineData("GET", "/mmds", "body", "GET request cannot have a body.")]            // test_invalid_get
    [InlineData("PUT", "/mmds", null, "Empty PUT request.")]                           // test_invalid_put
    [InlineData("PATCH", "/mmds", null, "Empty PATCH request.")]                       // test_invalid_patch
    [InlineData("PATCH", "/balloon", null, "Empty PATCH request.")]                    // test_invalid_patch
    [InlineData("PUT", "/mmds/foo", "{}", "Unrecognized PUT request path `foo`.")]     // request/mmds.rs
    [InlineData("GET", "/balloon/foo", null, "Unrecognized GET request path `foo`.")]  // request/balloon.rs
    [InlineData("PUT", "/snapshot", "{}", "Missing snapshot operation type.")]         // request/snapshot.rs
    [InlineData("PUT", "/snapshot/other", "{}", "Invalid request method and/or path: PUT /snapshot/other.")]
    [InlineData("PUT", "/drives", "{}", "The ID cannot be empty.")]                    // request/drive.rs
    [InlineData("PUT", "/drives/", "{}", "The ID cannot be empty.")]
    [InlineData("PATCH", "/network-interfaces", "{}", "The ID cannot be empty.")]      // request/net.rs
    [InlineData("PUT", "/network-interfaces/eth0", "{\"iface_id\": \"eth1\", \"host_dev_name\": \"tap0\"}",
        "The id from the path [eth0] does not match the id from the body [eth1]!")]    // request/net.rs
    [InlineData("PATCH", "/network-interfaces/eth0", "{\"iface_id\": \"eth1\"}",
        "The id from the path [eth0] does not match the id from the body [eth1]!")]
    public void Routing_errors_are_worded_as_firecrackers(string method, string path, string? body, string fault)
    {
        var p = ApiRequestParser.Parse(method, path, body);
        Assert.True(p.IsError, $"{method} {path} was accepted");
        Assert.Equal(fault, p.Error!.Message);
        Assert.Equal(400, p.Error.Status);
    }

    // firecracker parsed_request.rs: the path is split with trim_start_matches('/').split_terminator('/') and each
    // parser reads only the tokens it needs (test_try_from_* accept these).
    [Theory]
    [InlineData("GET", "/version/extra", null, typeof(GetVersion))]
    [InlineData("GET", "//machine-config", null, typeof(GetMachineConfig))]
    [InlineData("GET", "/mmds/anything", null, typeof(GetMmds))]
    [InlineData("GET", "/vm/config/", null, typeof(GetVmConfig))]
    [InlineData("PUT", "/actions/extra", "{\"action_type\": \"FlushMetrics\"}", typeof(FlushMetrics))]
    [InlineData("PUT", "/drives/root/extra", "{\"drive_id\": \"root\", \"is_root_device\": true, \"path_on_host\": \"/x\"}", typeof(PutDrive))]
    [InlineData("PATCH", "/balloon/other", "{\"amount_mib\": 1}", typeof(PatchBalloon))]
    public void Routing_reads_only_the_tokens_firecracker_reads(string method, string path, string? body, Type action)
    {
        var p = ApiRequestParser.Parse(method, path, body);
        Assert.Null(p.Error?.Message);
        Assert.IsType(action, p.Action);
    }

    // firecracker parsed_request.rs: test_missing_slash (a request target without '/' has an empty path).
    [Fact]
    public void A_target_without_a_slash_routes_as_the_empty_path()
    {
        using var env = new Env(server: true);
        using var c = env.Connect();
        c.Send("GET none HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody");
        Assert.Equal("GET request cannot have a body.", c.Read().Fault);
    }

    private static long DeprecatedCalls(MetricsRegistry r)
    {
        using var doc = JsonDocument.Parse(r.Snapshot(DateTimeOffset.UtcNow));
        return doc.RootElement.GetProperty("deprecated_api").GetProperty("deprecated_http_api_calls").GetInt64();
    }

    // firecracker request/machine_configuration.rs: test_parse_put_machine_config_request / ..._patch_... (deprecation
    // message) and tests/integration_tests/functional/test_api.py: test_negative_machine_config_api (the header),
    // request/vsock.rs: test_parse_put_vsock_request, request/mmds.rs: test_parse_put_mmds_config_request (V1),
    // request/snapshot.rs: test_parse_put_snapshot (mem_file_path).
    [Theory]
    [InlineData("PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 256, \"cpu_template\": \"None\"}")]
    [InlineData("PATCH", "/machine-config", "{\"cpu_template\": \"None\"}")]
    [InlineData("PUT", "/vsock", "{\"vsock_id\": \"v\", \"guest_cid\": 3, \"uds_path\": \"/tmp/v.sock\"}")]
    [InlineData("PUT", "/mmds/config", "{\"network_interfaces\": [\"eth0\"], \"version\": \"V1\"}")]
    [InlineData("PUT", "/mmds/config", "{\"network_interfaces\": [\"eth0\"]}")]
    [InlineData("PUT", "/snapshot/load", "{\"snapshot_path\": \"foo\", \"mem_file_path\": \"bar\"}")]
    [InlineData("PUT", "/snapshot/load", "{\"snapshot_path\": \"foo\", \"mem_backend\": {\"backend_type\": \"File\", \"backend_path\": \"bar\"}, \"enable_diff_snapshots\": true}")]
    public void Deprecated_fields_answer_with_the_deprecation_header_and_count(string method, string path, string body)
    {
        using var env = new Env(server: true);
        var registry = new MetricsRegistry();
        var metrics = new ApiRequestMetrics();
        metrics.BindTo(registry);
        env.Server!.RequestMetrics = metrics;
        using var c = env.Connect();
        var r = c.Call(method, path, body);
        Assert.True(r.Headers.TryGetValue("Deprecation", out var d), $"no Deprecation header on {method} {path} (status {r.Status})");
        Assert.Equal("true", d);
        Assert.Equal(1, DeprecatedCalls(registry));

        // Without the deprecated field: no header, no count.
        var plain = c.Call("GET", "/machine-config");
        Assert.False(plain.Headers.ContainsKey("Deprecation"));
        Assert.Equal(0, DeprecatedCalls(registry));
    }

    // firecracker request/mmds.rs: test_parse_put_mmds_config_request (V2 is not deprecated) and
    // request/machine_configuration.rs (no cpu_template: no message).
    [Theory]
    [InlineData("PUT", "/mmds/config", "{\"network_interfaces\": [\"eth0\"], \"version\": \"V2\"}")]
    [InlineData("PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 256}")]
    [InlineData("PUT", "/vsock", "{\"guest_cid\": 3, \"uds_path\": \"/tmp/v.sock\"}")]
    public void Current_fields_carry_no_deprecation(string method, string path, string body)
    {
        var p = ApiRequestParser.Parse(method, path, body);
        Assert.Null(p.Error?.Message);
        Assert.Null(p.Deprecation);
    }

    [Theory]
    [InlineData("PUT", "/machine-config", "{\"vcpu_count\": 2, \"mem_size_mib\": 256, \"cpu_template\": \"None\"}", "PUT /machine-config: cpu_template field is deprecated.")]
    [InlineData("PATCH", "/machine-config", "{\"cpu_template\": \"None\"}", "PATCH /machine-config: cpu_template field is deprecated.")]
    [InlineData("PUT", "/vsock", "{\"vsock_id\": \"v\", \"guest_cid\": 3, \"uds_path\": \"/tmp/v.sock\"}", "PUT /vsock: vsock_id field is deprecated.")]
    [InlineData("PUT", "/mmds/config", "{\"network_interfaces\": [\"eth0\"]}", "PUT /mmds/config: V1 is deprecated. Use V2 instead.")]
    [InlineData("PUT", "/snapshot/load", "{\"snapshot_path\": \"foo\", \"mem_file_path\": \"bar\"}", "PUT /snapshot/load: mem_file_path and enable_diff_snapshots fields are deprecated.")]
    public void Deprecation_messages_are_firecrackers(string method, string path, string body, string message)
    {
        var p = ApiRequestParser.Parse(method, path, body);
        Assert.Null(p.Error?.Message);
        Assert.Equal(message, p.Deprecation);
    }
}
