using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Flint.Pool;
using Flint.PoolDaemon;

namespace Flint.Pool.Tests;

/// <summary>The daemon's HTTP API over a real Unix socket, with fake slots behind it.</summary>
public sealed class PoolApiTests : IAsyncLifetime
{
    private readonly string _sock = Path.Combine(Path.GetTempPath(), $"fp-{Environment.ProcessId}-{Guid.NewGuid():N}"[..24] + ".sock");
    private readonly FakeLauncher _launcher = new();
    private PoolRegistry _registry = null!;
    private PoolMetricsExporter _exporter = null!;
    private HttpServer _server = null!;
    private HttpClient _http = null!;

    public Task InitializeAsync()
    {
        _registry = new PoolRegistry(_launcher, maintenanceInterval: TimeSpan.FromMilliseconds(20));
        _exporter = new PoolMetricsExporter();
        var api = new PoolApi(_registry, _exporter);
        _server = new HttpServer(api.HandleAsync) { HeadTimeout = TimeSpan.FromMilliseconds(500) };
        _server.ListenUnix(_sock);
        _http = new HttpClient(new SocketsHttpHandler
        {
            ConnectCallback = async (_, ct) =>
            {
                var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                await s.ConnectAsync(new UnixDomainSocketEndPoint(_sock), ct);
                return new NetworkStream(s, ownsSocket: true);
            },
        })
        { BaseAddress = new Uri("http://localhost"), Timeout = TimeSpan.FromSeconds(20) };
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _server.DisposeAsync();
        await _registry.DisposeAsync();
        _exporter.Dispose();
        File.Delete(_sock);
    }

    private const string Upper = """{"kernel_image_path": "/guest/vmlinux", "handler_args": "tg.agent=5005 tg.agent.handler=upper", "min_warm": 1, "max_slots": 2, "queue_timeout_ms": 300, "invoke_timeout_ms": 300}""";

    private Task<HttpResponseMessage> Put(string path, string body) => _http.PutAsync(path, new StringContent(body));

    private static async Task<string> Fault(HttpResponseMessage r)
    {
        using var d = JsonDocument.Parse(await r.Content.ReadAsStringAsync());
        return d.RootElement.GetProperty("fault_message").GetString()!;
    }

    [Fact]
    public async Task Register_invoke_list_and_drain()
    {
        var r = await Put("/functions/upper", Upper);
        Assert.Equal(HttpStatusCode.Created, r.StatusCode);
        var inv = await _http.PostAsync("/functions/upper/invoke", new ByteArrayContent("hello pool"u8.ToArray()));
        Assert.Equal(HttpStatusCode.OK, inv.StatusCode);
        Assert.Equal("HELLO POOL", await inv.Content.ReadAsStringAsync());
        Assert.Equal("0", inv.Headers.GetValues("X-Flint-Status").Single());
        Assert.StartsWith("upper-", inv.Headers.GetValues("X-Flint-Slot").Single());

        using (var list = JsonDocument.Parse(await _http.GetStringAsync("/functions")))
        {
            var f = list.RootElement.EnumerateArray().Single();
            Assert.Equal("upper", f.GetProperty("name").GetString());
            Assert.Equal("boot", f.GetProperty("source").GetString());
        }
        using (var one = JsonDocument.Parse(await _http.GetStringAsync("/functions/upper")))
            Assert.Equal(1, one.RootElement.GetProperty("slots")[0].GetProperty("invocations").GetInt32());

        Assert.Equal(HttpStatusCode.NoContent, (await _http.DeleteAsync("/functions/upper")).StatusCode);
        Assert.All(_launcher.Launched, s => Assert.True(s.Disposed));
        Assert.Equal(1, _launcher.Forgotten);
        var gone = await _http.PostAsync("/functions/upper/invoke", new ByteArrayContent([]));
        Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
        Assert.Contains("No function named 'upper'", await Fault(gone));
    }

    [Theory]
    [InlineData("{", "not valid JSON")]
    [InlineData("[]", "JSON object")]
    [InlineData("""{"kernel_image_path": "/k", "bogus": 1}""", "Unknown field 'bogus'")]
    [InlineData("""{"kernel_image_path": "relative/k"}""", "absolute path")]
    [InlineData("""{"kernel_image_path": "/k", "vcpu_count": 0}""", "'vcpu_count' must be between 1 and 32")]
    [InlineData("""{"kernel_image_path": "/k", "vcpu_count": "2"}""", "'vcpu_count' must be an integer")]
    [InlineData("""{"kernel_image_path": "/k", "min_warm": 5, "max_slots": 2}""", "min_warm (5) is over max_slots (2)")]
    [InlineData("""{"handler_args": "x"}""", "Either kernel_image_path or snapshot is required")]
    [InlineData("""{"kernel_image_path": "/k", "snapshot": {"snapshot_path": "/s", "mem_file_path": "/m"}}""", "exclude each other")]
    [InlineData("""{"snapshot": {"snapshot_path": "/s"}}""", "needs snapshot_path and mem_file_path")]
    [InlineData("""{"kernel_image_path": "/k", "cgroups": ["memory.max"]}""", "file>=<value>")]
    [InlineData("""{"kernel_image_path": "/k", "boot_args": "a\nb"}""", "printable ASCII")]
    public async Task A_bad_configuration_is_refused_with_a_sentence_naming_the_problem(string body, string words)
    {
        var r = await Put("/functions/f1", body);
        Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
        string m = await Fault(r);
        Assert.Contains(words, m);
        Assert.DoesNotContain("Exception", m);
        Assert.Empty(_registry.Pools());
    }

    [Theory]
    [InlineData("a_b")]
    [InlineData("-lead")]
    [InlineData("waytoolongnamewaytoolongnamewaytoolongname")]
    public async Task A_bad_function_name_is_refused(string name)
    {
        var r = await Put("/functions/" + name, Upper);
        Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
        Assert.Contains("Invalid function name", await Fault(r));
    }

    [Fact]
    public async Task Registering_a_name_twice_is_a_conflict()
    {
        Assert.Equal(HttpStatusCode.Created, (await Put("/functions/twice", Upper)).StatusCode);
        var r = await Put("/functions/twice", Upper);
        Assert.Equal(HttpStatusCode.Conflict, r.StatusCode);
        Assert.Contains("already registered", await Fault(r));
    }

    [Fact]
    public async Task Invocation_errors_map_to_gateway_statuses_and_pool_full_to_503_with_retry_after()
    {
        await Put("/functions/upper", Upper);
        var hang = await _http.PostAsync("/functions/upper/invoke", new StringContent(FakePayloads.Hang));
        Assert.Equal(HttpStatusCode.GatewayTimeout, hang.StatusCode);
        Assert.Contains("timed out", await Fault(hang));
        var garbage = await _http.PostAsync("/functions/upper/invoke", new StringContent(FakePayloads.Garbage));
        Assert.Equal(HttpStatusCode.BadGateway, garbage.StatusCode);
        var die = await _http.PostAsync("/functions/upper/invoke", new StringContent(FakePayloads.Die));
        Assert.Equal(HttpStatusCode.BadGateway, die.StatusCode);
        Assert.Contains("died", await Fault(die));

        // Both slots busy for 1 s; a third invocation waits its 300 ms queue timeout and is told the pool is full.
        var busy = Enumerable.Range(0, 2).Select(_ => _http.PostAsync("/functions/upper/invoke", new StringContent(FakePayloads.SleepMs(1000)))).ToArray();
        Assert.True(Wait.Until(() => _registry.Get("upper").Counts().Busy == 2));
        var full = await _http.PostAsync("/functions/upper/invoke", new StringContent("x"));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, full.StatusCode);
        Assert.Equal("1", full.Headers.GetValues("Retry-After").Single());
        foreach (var b in busy) Assert.Equal(HttpStatusCode.OK, (await b).StatusCode);
    }

    [Fact]
    public async Task Health_ready_and_metrics()
    {
        Assert.Equal(HttpStatusCode.OK, (await _http.GetAsync("/health")).StatusCode);
        await Put("/functions/upper", Upper);
        Assert.True(Wait.Until(() => _http.GetAsync("/ready").Result.StatusCode == HttpStatusCode.OK));
        for (int i = 0; i < 3; i++) await _http.PostAsync("/functions/upper/invoke", new StringContent("m"));
        await _http.PostAsync("/functions/upper/invoke", new StringContent(FakePayloads.Garbage));

        var prom = await _http.GetStringAsync("/metrics?format=prometheus");
        Assert.Contains("flint_pool_invocations_total{function=\"upper\",outcome=\"ok\"} 3", prom);
        Assert.Contains("flint_pool_invocations_total{function=\"upper\",outcome=\"garbage\"} 1", prom);
        Assert.Contains("flint_pool_invocation_duration_milliseconds_count{function=\"upper\"} 4", prom);
        Assert.Contains("flint_pool_slots{function=\"upper\",state=\"idle\"}", prom);
        Assert.Contains("flint_pool_slots_stopped_total{function=\"upper\",reason=\"garbage\"} 1", prom);

        using var json = JsonDocument.Parse(await _http.GetStringAsync("/metrics"));
        var counters = json.RootElement.GetProperty("flint_pool").GetProperty("counters");
        Assert.Contains(counters.EnumerateArray(), c => c.GetProperty("name").GetString() == "flint.pool.slots.started");

        // The garbage answer killed its slot; its replacement starts in the background (min_warm), so wait for it.
        Assert.True(Wait.Until(() => _registry.Get("upper").Slots().Any()));
        var slot = _registry.Get("upper").Slots().First().Id;
        Assert.Equal($"{{\"slot\":\"{slot}\"}}", await _http.GetStringAsync($"/functions/upper/slots/{slot}/metrics"));
        Assert.Equal(HttpStatusCode.NotFound, (await _http.GetAsync("/functions/upper/slots/nope/metrics")).StatusCode);
    }

    [Fact]
    public async Task Unknown_routes_and_methods_are_refused_as_json()
    {
        var r = await _http.GetAsync("/nothing");
        Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
        Assert.Contains("No route", await Fault(r));
        await Put("/functions/upper", Upper);
        var m = await _http.GetAsync("/functions/upper/invoke");
        Assert.Equal(HttpStatusCode.MethodNotAllowed, m.StatusCode);
    }

    private async Task<string> Raw(string request, int wait = 2000)
    {
        using var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await s.ConnectAsync(new UnixDomainSocketEndPoint(_sock));
        await s.SendAsync(Encoding.ASCII.GetBytes(request));
        var buf = new byte[4096];
        int n = 0;
        using var cts = new CancellationTokenSource(wait);
        try
        {
            while (true)
            {
                int k = await s.ReceiveAsync(buf.AsMemory(n), SocketFlags.None, cts.Token);
                if (k == 0) break;
                n += k;
            }
        }
        catch (OperationCanceledException) { return Encoding.ASCII.GetString(buf, 0, n) + "<still open>"; }
        return Encoding.ASCII.GetString(buf, 0, n);
    }

    [Theory]
    [InlineData("BREW /health HTTP/1.1\r\n\r\n", "Unsupported HTTP method")]
    [InlineData("GET /health HTTP/2.0\r\n\r\n", "Unsupported HTTP version")]
    [InlineData("PUT /functions/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", "Transfer-Encoding")]
    [InlineData("PUT /functions/x HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", "Invalid Content-Length")]
    [InlineData("PUT /functions/x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", "Invalid Content-Length")]
    [InlineData("GET health HTTP/1.1\r\n\r\n", "Invalid request target")]
    public async Task Malformed_requests_get_400_and_the_connection_is_closed(string request, string words)
    {
        var answer = await Raw(request);
        Assert.StartsWith("HTTP/1.1 400", answer);
        Assert.Contains(words, answer);
        Assert.DoesNotContain("<still open>", answer);
    }

    [Fact]
    public async Task A_client_that_never_finishes_its_head_is_dropped_after_the_head_timeout()
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var answer = await Raw("GET /health HTTP/1.1\r\nHost: x", wait: 3000);
        Assert.DoesNotContain("<still open>", answer);
        Assert.InRange(sw.ElapsedMilliseconds, 300, 2500);
    }

    [Fact]
    public async Task A_body_over_the_limit_is_refused_before_it_is_read()
    {
        var answer = await Raw("POST /functions/x/invoke HTTP/1.1\r\nContent-Length: 4294967295\r\n\r\n");
        Assert.StartsWith("HTTP/1.1 413", answer);
    }

    [Fact]
    public async Task Keep_alive_serves_several_requests_on_one_connection()
    {
        var answer = await Raw("GET /health HTTP/1.1\r\n\r\nGET /health HTTP/1.1\r\nConnection: close\r\n\r\n");
        Assert.Equal(2, answer.Split("HTTP/1.1 200").Length - 1);
    }
}
