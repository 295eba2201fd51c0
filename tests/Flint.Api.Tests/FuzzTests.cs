using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Flint.Vmm.Rpc;

namespace Flint.Api.Tests;

/// <summary>Property tests with fixed seeds: random and mutated requests never crash and never corrupt the config.</summary>
public class FuzzTests
{
    private static readonly string[] Methods = ["GET", "PUT", "PATCH", "POST", "DELETE", "HEAD", "get", ""];

    private static string[] Paths(Env e) =>
    [
        "/", "/version", "/machine-config", "/vm/config", "/vm", "/actions", "/boot-source", "/drives/rootfs", "/drives/data",
        "/drives/", "/drives/bad-id", "/drives/" + new string('a', 70), "/network-interfaces/eth0", "/network-interfaces/eth1",
        "/vsock", "/entropy", "/balloon", "/balloon/statistics", "/mmds", "/mmds/config", "/logger", "/metrics",
        "/cpu-config", "/snapshot/create", "/snapshot/load", "/foo", "//", "/drives/rootfs/extra", "/vm/config/x",
    ];

    private static string[] Bodies(Env e)
    {
        string k = e.Kernel, r = e.Rootfs, d = e.Disk2;
        return
        [
            $"{{\"kernel_image_path\": \"{k}\", \"boot_args\": \"console=ttyS0\"}}",
            $"{{\"kernel_image_path\": \"{k}\", \"initrd_path\": \"{d}\"}}",
            $"{{\"drive_id\": \"rootfs\", \"path_on_host\": \"{r}\", \"is_root_device\": true, \"is_read_only\": false}}",
            $"{{\"drive_id\": \"data\", \"path_on_host\": \"{d}\", \"is_root_device\": false, \"cache_type\": \"Writeback\"}}",
            $"{{\"drive_id\": \"data\", \"path_on_host\": \"{d}\", \"is_root_device\": true}}",
            $"{{\"drive_id\": \"rootfs\", \"path_on_host\": \"{d}\"}}",
            "{\"vcpu_count\": 2, \"mem_size_mib\": 256, \"smt\": false, \"track_dirty_pages\": true}",
            "{\"vcpu_count\": 3}",
            "{\"mem_size_mib\": 64}",
            "{\"action_type\": \"InstanceStart\"}",
            "{\"action_type\": \"SendCtrlAltDel\"}",
            "{\"action_type\": \"FlushMetrics\"}",
            "{\"state\": \"Paused\"}",
            "{\"state\": \"Resumed\"}",
            $"{{\"iface_id\": \"eth0\", \"host_dev_name\": \"{e.TapName}\", \"guest_mac\": \"06:00:AC:10:00:02\", \"rx_rate_limiter\": {{\"bandwidth\": {{\"size\": 1, \"refill_time\": 1}}}}}}",
            $"{{\"guest_cid\": 3, \"uds_path\": \"{e.VsockPath}\"}}",
            "{\"rate_limiter\": {\"ops\": {\"size\": 10, \"one_time_burst\": 5, \"refill_time\": 100}}}",
            "{\"amount_mib\": 10, \"deflate_on_oom\": false, \"stats_polling_interval_s\": 1}",
            "{\"stats_polling_interval_s\": 3}",
            "{\"latest\": {\"meta-data\": {\"a\": [1, 2, {\"b\": null}]}}}",
            "{\"version\": \"V2\", \"network_interfaces\": [\"eth0\"], \"ipv4_address\": \"169.254.170.2\"}",
            "{\"log_path\": \"/tmp/l\", \"level\": \"Warning\", \"show_level\": true}",
            "{\"metrics_path\": \"/tmp/m\"}",
            "{\"kvm_capabilities\": [\"!56\"], \"msr_modifiers\": [{\"addr\": \"0x10a\", \"bitmap\": \"0b1\"}]}",
            "{\"snapshot_path\": \"s\", \"mem_file_path\": \"m\", \"snapshot_type\": \"Diff\"}",
            "{\"snapshot_path\": \"s\", \"mem_backend\": {\"backend_type\": \"Uffd\", \"backend_path\": \"u\"}, \"resume_vm\": true}",
            "{}", "[]", "null", "1", "\"s\"", "{\"a\":", "",
        ];
    }

    private static (string M, string P, string? B)[] Valid(Env e)
    {
        var b = Bodies(e);
        return
        [
            ("PUT", "/boot-source", b[0]), ("PUT", "/boot-source", b[1]), ("PUT", "/drives/rootfs", b[2]), ("PUT", "/drives/data", b[3]),
            ("PUT", "/drives/data", b[4]), ("PATCH", "/drives/rootfs", b[5]), ("PUT", "/machine-config", b[6]), ("PATCH", "/machine-config", b[7]),
            ("PATCH", "/machine-config", b[8]), ("PUT", "/actions", b[9]), ("PUT", "/actions", b[10]), ("PUT", "/actions", b[11]),
            ("PATCH", "/vm", b[12]), ("PATCH", "/vm", b[13]), ("PUT", "/network-interfaces/eth0", b[14]), ("PUT", "/vsock", b[15]),
            ("PUT", "/entropy", b[16]), ("PUT", "/balloon", b[17]), ("PATCH", "/balloon/statistics", b[18]), ("PUT", "/mmds", b[19]),
            ("PATCH", "/mmds", b[19]), ("PUT", "/mmds/config", b[20]), ("PUT", "/logger", b[21]), ("PUT", "/metrics", b[22]),
            ("PUT", "/cpu-config", b[23]), ("PUT", "/snapshot/create", b[24]), ("PUT", "/snapshot/load", b[25]),
            ("GET", "/", null), ("GET", "/version", null), ("GET", "/vm/config", null), ("GET", "/machine-config", null),
            ("GET", "/mmds", null), ("GET", "/balloon", null),
        ];
    }

    private static readonly string[] Tokens =
    [
        "{", "}", "[", "]", ":", ",", "\"", "null", "true", "false", "-1", "0", "1e3", "1.5", "18446744073709551616", "\"x\"",
        "\\u0000", "\\ud800", "\u00e9", "\n", " ", "\"vcpu_count\"", "\"drive_id\"", "\"foo\"", "{\"a\":{\"a\":{\"a\":1}}}",
        new string('[', 70),
    ];

    private static string Mutate(Random rng, string s)
    {
        int n = rng.Next(1, 4);
        var sb = new StringBuilder(s);
        for (int i = 0; i < n; i++)
        {
            int pos = sb.Length == 0 ? 0 : rng.Next(sb.Length + 1);
            switch (rng.Next(6))
            {
                case 0: if (sb.Length > 0 && pos < sb.Length) sb.Remove(pos, Math.Min(rng.Next(1, 8), sb.Length - pos)); break;
                case 1: sb.Insert(pos, Tokens[rng.Next(Tokens.Length)]); break;
                case 2: if (pos < sb.Length) sb[pos] = (char)rng.Next(0x20, 0x7f); break;
                case 3: sb.Length = pos; break;
                case 4: if (pos < sb.Length) sb[pos] = (char)rng.Next(0, 0x800); break;
                default: sb.Insert(pos, RandomJson(rng, 3)); break;
            }
        }
        return sb.ToString();
    }

    private static string RandomJson(Random rng, int depth)
    {
        switch (depth <= 0 ? rng.Next(5) : rng.Next(7))
        {
            case 0: return "null";
            case 1: return rng.Next(2) == 0 ? "true" : "false";
            case 2: return rng.Next(3) == 0 ? (rng.NextDouble() * 1e6).ToString("R") : rng.NextInt64(long.MinValue, long.MaxValue).ToString();
            case 3: return JsonSerializerString(rng);
            case 4: return rng.Next(10).ToString();
            case 5:
                return "[" + string.Join(",", Enumerable.Range(0, rng.Next(4)).Select(_ => RandomJson(rng, depth - 1))) + "]";
            default:
                string[] keys = ["vcpu_count", "mem_size_mib", "drive_id", "is_root_device", "path_on_host", "action_type", "state", "kernel_image_path", "x", "iface_id", "host_dev_name"];
                return "{" + string.Join(",", Enumerable.Range(0, rng.Next(5)).Select(_ => $"\"{keys[rng.Next(keys.Length)]}\":{RandomJson(rng, depth - 1)}")) + "}";
        }
    }

    private static string JsonSerializerString(Random rng)
    {
        string[] s = ["rootfs", "eth0", "InstanceStart", "Paused", "", "/tmp", "a\\\"b", "\\u00e9", "V1", "Writeback"];
        return "\"" + s[rng.Next(s.Length)] + "\"";
    }

    [Fact]
    public void Million_requests_through_the_request_parser_and_JSON_bodies()
    {
        var rng = new Random(424242);
        using var env = new Env();
        var valid = Valid(env);
        var paths = Paths(env);
        var bodies = Bodies(env);
        int rejected = 0;
        for (int i = 0; i < 1_000_000; i++)
        {
            var (method, path, body) = valid[rng.Next(valid.Length)];
            switch (rng.Next(6))
            {
                case 0: break;
                case 1 or 2: body = Mutate(rng, body ?? ""); break;
                case 3: method = Methods[rng.Next(Methods.Length)]; path = paths[rng.Next(paths.Length)]; break;
                case 4: path = Mutate(rng, path); break;
                default: body = rng.Next(2) == 0 ? RandomJson(rng, 4) : bodies[rng.Next(bodies.Length)]; break;
            }
            ParsedRequest r;
            try { r = ApiRequestParser.Parse(method, path, body); }
            catch (Exception e) { throw new Xunit.Sdk.XunitException($"#{i} {method} {path} {body}: escaped {e}"); }
            Assert.True((r.Action == null) != (r.Error == null), $"#{i}: exactly one of action and error");
            if (r.Error is { } err)
            {
                rejected++;
                Assert.True(err.Status is >= 400 and < 500, $"#{i} {method} {path}: status {err.Status}");
                Assert.False(string.IsNullOrEmpty(err.Message));
            }
        }
        Assert.True(rejected > 100_000, $"only {rejected} rejected: the mutations are too weak");
    }

    [Fact]
    public void Hundred_thousand_requests_through_parser_and_controller()
    {
        var rng = new Random(20260101);
        Env env = new();
        try
        {
            var paths = Paths(env);
            var bodies = Bodies(env);
            string config = env.ConfigJson;
            int errors = 0, ok = 0;
            for (int i = 0; i < 100_000; i++)
            {
                if (i % 5000 == 4999) { env.Dispose(); env = new Env(); paths = Paths(env); bodies = Bodies(env); config = env.ConfigJson; }
                var valid = Valid(env);
                var (method, path, body) = valid[rng.Next(valid.Length)];
                switch (rng.Next(10))
                {
                    case 0 or 1 or 2 or 3 or 4: break; // as is
                    case 5 or 6 or 7: body = Mutate(rng, body ?? ""); break;
                    case 8:
                        method = Methods[rng.Next(Methods.Length)];
                        path = rng.Next(2) == 0 ? paths[rng.Next(paths.Length)] : Mutate(rng, path);
                        break;
                    default: body = rng.Next(2) == 0 ? RandomJson(rng, 4) : bodies[rng.Next(bodies.Length)]; break;
                }

                ApiResponse r;
                try { r = env.Controller.Handle(method, path, body); }
                catch (Exception e) { throw new Xunit.Sdk.XunitException($"#{i} {method} {path} {body}: escaped {e}"); }

                string after = env.ConfigJson;
                if (r.Status >= 400)
                {
                    errors++;
                    Assert.True(r.Status is >= 400 and < 500, $"#{i} {method} {path} {body}: status {r.Status} {r.Body}");
                    Assert.NotNull(r.Body);
                    var fault = JsonDocument.Parse(r.Body!).RootElement.GetProperty("fault_message").GetString();
                    Assert.False(string.IsNullOrEmpty(fault));
                    Assert.True(config == after, $"#{i} {method} {path} {body}: rejected ({fault}) but the config changed");
                }
                else
                {
                    ok++;
                    Assert.True(r.Status is 200 or 204, $"#{i}: {r.Status}");
                    if (r.Status == 200) JsonDocument.Parse(r.Body!).Dispose();
                    else Assert.Null(r.Body);
                }
                config = after;
            }
            Assert.True(errors > 10_000 && ok > 10_000, $"errors {errors}, ok {ok}");
        }
        finally { env.Dispose(); }
    }

    [Fact]
    public void Million_raw_heads_through_the_HTTP_parser()
    {
        var rng = new Random(7);
        string[] seeds =
        [
            "GET / HTTP/1.1\r\n\r\n",
            "PUT /machine-config HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n",
            "PATCH /vm HTTP/1.0\r\nConnection: keep-alive\r\nExpect: 100-continue\r\nContent-Length: 19\r\n\r\n",
            "GET http://localhost/version HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n",
        ];
        for (int i = 0; i < 1_000_000; i++)
        {
            var bytes = Encoding.Latin1.GetBytes(seeds[rng.Next(seeds.Length)]);
            int muts = rng.Next(1, 5);
            var list = bytes.ToList();
            for (int m = 0; m < muts; m++)
            {
                int pos = rng.Next(list.Count + 1);
                switch (rng.Next(4))
                {
                    case 0: if (pos < list.Count) list.RemoveAt(pos); break;
                    case 1: list.Insert(pos, (byte)rng.Next(256)); break;
                    case 2: if (pos < list.Count) list[pos] = (byte)rng.Next(256); break;
                    default: list.InsertRange(pos, "\r\n"u8.ToArray()); break;
                }
            }
            var span = list.ToArray().AsSpan();
            var st = HttpRequestParser.TryParse(span, 8192, out var head, out var err);
            if (st == HttpParseStatus.Error) Assert.False(string.IsNullOrEmpty(err));
            if (st == HttpParseStatus.Complete)
            {
                Assert.InRange(head.HeadLength, 4, span.Length);
                Assert.InRange(head.PathStart + head.PathLength, 1, head.HeadLength);
                Assert.InRange(head.MethodStart + head.MethodLength, 1, head.HeadLength);
                // A target that is not "/..." (nor absolute) has an empty path, as micro-http's get_abs_path.
                if (head.PathLength > 0) Assert.Equal((byte)'/', span[head.PathStart]);
            }
        }
    }

    [Fact]
    public void Mutated_raw_requests_against_the_live_server()
    {
        var rng = new Random(99);
        using var env = new Env(server: true, maxPayload: 4096);
        var bodies = Bodies(env);
        for (int i = 0; i < 400; i++)
        {
            string body = bodies[rng.Next(bodies.Length)];
            string raw = Client.Request(Methods[rng.Next(3)], Paths(env)[rng.Next(10)], body.Length == 0 ? null : body);
            if (rng.Next(2) == 0) raw = Mutate(rng, raw);
            using var c = env.Connect();
            c.Send(raw);
            c.S.Shutdown(SocketShutdown.Send);
            while (true)
            {
                HttpResp r;
                try { r = c.Read(5000); }
                catch (IOException) { break; } // closed: incomplete request or after Connection: close
                Assert.True(r.Status < 500, $"{raw}: {r.Status} {r.Body}");
                if (r.Status >= 400) Assert.False(string.IsNullOrEmpty(r.Fault));
            }
        }
        using var last = env.Connect();
        Assert.Equal(200, last.Call("GET", "/").Status);
    }
}
