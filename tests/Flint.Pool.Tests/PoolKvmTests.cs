using System.Diagnostics;
using System.Net;
using System.Text;
using System.Text.Json;
using Flint.Client;
using Flint.Client.Models;
using Flint.Pool;
using Flint.TestGuest;

namespace Flint.Pool.Tests;

/// <summary>
/// flint-pool end to end on KVM: the published artifacts/bin/flint-pool, each slot a jailed flint running the test
/// guest in agent mode (tg.agent=5005, docs/agent-protocol.md), driven over the daemon's HTTP API. Needs /dev/kvm
/// and root; skipped elsewhere (the nested-KVM tier runs them: tests/nested-kvm).
/// </summary>
[Trait("Needs", "kvm")]
public sealed class PoolKvmTests : IAsyncLifetime
{
    private readonly string _dir = Path.Combine("/tmp", $"fpk-{Guid.NewGuid():N}"[..12]);
    private readonly string _fn = "tg" + Guid.NewGuid().ToString("N")[..6];
    private Process? _daemon;
    private HttpClient _http = null!;
    private readonly StringBuilder _log = new();

    private string Sock => Path.Combine(_dir, "pool.sock");
    private string PoolDir => Path.Combine(_dir, "p");

    public async Task InitializeAsync()
    {
        if (!File.Exists("/dev/kvm") || !Repo.IsRoot) return;
        Assert.True(File.Exists(Repo.Bin("flint-pool")), "artifacts/bin/flint-pool missing: run scripts/setup.sh");
        Directory.CreateDirectory(_dir);
        var psi = new ProcessStartInfo(Repo.Bin("flint-pool"), ["--api-sock", Sock, "--pool-dir", PoolDir])
        { RedirectStandardOutput = true, RedirectStandardError = true };
        _daemon = Process.Start(psi)!;
        _daemon.OutputDataReceived += (_, e) => { if (e.Data != null) lock (_log) _log.AppendLine(e.Data); };
        _daemon.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (_log) _log.AppendLine(e.Data); };
        _daemon.BeginOutputReadLine();
        _daemon.BeginErrorReadLine();
        Assert.True(Wait.Until(() => File.Exists(Sock), 10), "flint-pool did not open its socket: " + Log());
        _http = UnixHttp.Create(Sock, TimeSpan.FromSeconds(120));
        await Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        _http?.Dispose();
        if (_daemon != null)
        {
            if (!_daemon.HasExited) using (var k = Process.Start("kill", ["-TERM", _daemon.Id.ToString()])) k.WaitForExit();
            if (!_daemon.WaitForExit(60_000)) _daemon.Kill();
            _daemon.Dispose();
        }
        foreach (int pid in Repo.ProcessesMentioning(_dir)) { try { Process.GetProcessById(pid).Kill(); } catch (Exception) { } }
        try { Directory.Delete(_dir, true); } catch (IOException) { }
        await Task.CompletedTask;
    }

    private string Log() { lock (_log) return _log.ToString(); }

    private static void Require()
    {
        Skip.IfNot(File.Exists("/dev/kvm"), "/dev/kvm is absent on this machine: KVM tests cannot run here");
        Skip.IfNot(Repo.IsRoot, "flint-pool starts slots through flint-jailer, which needs root");
    }

    private static string Boot(string handler, int invokeMs = 5000, int minWarm = 1, int maxSlots = 4, int maxInvocations = 0, int queueMs = 30_000) =>
        $$"""
        {"kernel_image_path": "{{TestGuestImage.Path}}", "boot_args": "tg.tests=serial tg.boottimer=0",
         "handler_args": "tg.agent=5005 tg.agent.handler={{handler}}", "vcpu_count": 1, "mem_size_mib": 64,
         "min_warm": {{minWarm}}, "max_slots": {{maxSlots}}, "max_invocations_per_slot": {{maxInvocations}},
         "invoke_timeout_ms": {{invokeMs}}, "queue_timeout_ms": {{queueMs}}, "ready_timeout_s": 120}
        """;

    private async Task Register(string body)
    {
        var r = await _http.PutAsync($"/functions/{_fn}", new StringContent(body));
        Assert.True(r.StatusCode == HttpStatusCode.Created, await r.Content.ReadAsStringAsync() + Log());
    }

    private async Task<JsonElement> Function()
    {
        using var d = JsonDocument.Parse(await _http.GetStringAsync($"/functions/{_fn}"));
        return d.RootElement.Clone();
    }

    private async Task WaitReady(int slots, double seconds = 180)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed.TotalSeconds < seconds)
        {
            var f = await Function();
            if (f.GetProperty("slots_by_state").GetProperty("idle").GetInt32() >= slots) return;
            await Task.Delay(100);
        }
        Assert.Fail($"{slots} slots were not ready within {seconds} s: {await Function()}\n{Log()}");
    }

    private Task<HttpResponseMessage> Invoke(string payload) =>
        _http.PostAsync($"/functions/{_fn}/invoke", new ByteArrayContent(Encoding.UTF8.GetBytes(payload)));

    private static async Task<string> Fault(HttpResponseMessage r)
    {
        using var d = JsonDocument.Parse(await r.Content.ReadAsStringAsync());
        return d.RootElement.GetProperty("fault_message").GetString()!;
    }

    /// <summary>After a drain: no slot process, jail, socket, cgroup or function file is left.</summary>
    private void AssertNothingLeft()
    {
        Assert.Empty(Repo.ProcessesMentioning(Path.Combine(PoolDir, "jails")));
        Assert.Empty(Repo.ProcessesMentioning("--id " + _fn + "-")); // a jailed flint is "/flint --id <slot id> ..."
        var jails = Path.Combine(PoolDir, "jails", "flint");
        Assert.True(!Directory.Exists(jails) || Directory.GetFileSystemEntries(jails).Length == 0, "jail directories (and their sockets) left");
        Assert.False(Directory.Exists(Path.Combine(PoolDir, "functions", _fn)), "the function's files were left");
        var cgroups = new List<string>();
        foreach (var root in new[] { "/sys/fs/cgroup" }.Concat(Directory.GetDirectories("/sys/fs/cgroup")))
        {
            var parent = Path.Combine(root, "flint-pool");
            if (Directory.Exists(parent)) cgroups.AddRange(Directory.GetDirectories(parent, _fn + "-*"));
        }
        Assert.Empty(cgroups);
    }

    [SkippableFact]
    public async Task A_thousand_invocations_from_eight_clients_are_all_correct_and_drain_leaves_nothing()
    {
        Require();
        await Register(Boot("upper", minWarm: 2, maxSlots: 4, maxInvocations: 150));
        await WaitReady(2);
        int wrong = 0, failed = 0;
        var errors = new List<string>();
        var lat = new List<double>();
        await Task.WhenAll(Enumerable.Range(0, 8).Select(c => Task.Run(async () =>
        {
            for (int i = 0; i < 125; i++)
            {
                string p = $"client {c} call {i} payload";
                var sw = Stopwatch.StartNew();
                var r = await Invoke(p);
                double ms = sw.Elapsed.TotalMilliseconds;
                string body = await r.Content.ReadAsStringAsync();
                lock (lat) lat.Add(ms);
                if (r.StatusCode != HttpStatusCode.OK) { Interlocked.Increment(ref failed); lock (errors) errors.Add(body); }
                else if (body != p.ToUpperInvariant() || r.Headers.GetValues("X-Flint-Status").Single() != "0") Interlocked.Increment(ref wrong);
            }
        })));
        Assert.True(failed == 0, $"{failed} invocations failed: {string.Join("\n", errors.Take(5))}\n{Log()}");
        Assert.Equal(0, wrong);
        lat.Sort();
        Console.WriteLine($"pool: 1000 invocations, p50 {lat[500]:0.00} ms, p99 {lat[990]:0.00} ms");
        var prom = await _http.GetStringAsync("/metrics?format=prometheus");
        Assert.Contains($"flint_pool_invocations_total{{function=\"{_fn}\",outcome=\"ok\"}} 1000", prom);
        Assert.Contains($"flint_pool_slots_stopped_total{{function=\"{_fn}\",reason=\"recycled\"}}", prom); // 1000 > 4 x 150

        // Flint's own metrics of a live slot, flushed on demand.
        var slot = (await Function()).GetProperty("slots")[0].GetProperty("id").GetString();
        using (var m = JsonDocument.Parse(await _http.GetStringAsync($"/functions/{_fn}/slots/{slot}/metrics")))
            Assert.True(m.RootElement.TryGetProperty("vsock", out _));

        Assert.NotEmpty(Repo.ProcessesMentioning("--id " + _fn + "-")); // the leak check below does see live slots
        Assert.Equal(HttpStatusCode.NoContent, (await _http.DeleteAsync($"/functions/{_fn}")).StatusCode);
        AssertNothingLeft();
    }

    [SkippableFact]
    public async Task Kill_9_of_a_slot_mid_invocation_gives_a_clear_error_and_the_slot_is_replaced()
    {
        Require();
        await Register(Boot("hang", invokeMs: 60_000, minWarm: 1, maxSlots: 2));
        await WaitReady(1);
        var call = Invoke("never answered");
        JsonElement busy = default;
        Assert.True(Wait.Until(() =>
        {
            var f = Function().Result;
            busy = f.GetProperty("slots").EnumerateArray().FirstOrDefault(s => s.GetProperty("state").GetString() == "busy");
            return busy.ValueKind == JsonValueKind.Object;
        }, 10));
        int pid = busy.GetProperty("pid").GetInt32();
        string victim = busy.GetProperty("id").GetString()!;
        var sw = Stopwatch.StartNew();
        Process.GetProcessById(pid).Kill(); // SIGKILL
        var r = await call;
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5), $"the invocation took {sw.Elapsed} to fail after the kill");
        Assert.Equal(HttpStatusCode.BadGateway, r.StatusCode);
        string m = await Fault(r);
        Assert.Contains("died", m);
        Assert.Contains(victim, m);
        await WaitReady(1);
        Assert.DoesNotContain((await Function()).GetProperty("slots").EnumerateArray(), s => s.GetProperty("id").GetString() == victim);
        Assert.False(Directory.Exists(Path.Combine(PoolDir, "jails", "flint", victim)), "the dead slot's jail was left");
        Assert.Equal(HttpStatusCode.NoContent, (await _http.DeleteAsync($"/functions/{_fn}")).StatusCode);
        AssertNothingLeft();
    }

    [SkippableFact]
    public async Task A_hanging_handler_times_out_and_a_garbage_handler_is_a_protocol_error()
    {
        Require();
        await Register(Boot("hang", invokeMs: 500, minWarm: 1, maxSlots: 1));
        await WaitReady(1);
        var sw = Stopwatch.StartNew();
        var r = await Invoke("x");
        Assert.Equal(HttpStatusCode.GatewayTimeout, r.StatusCode);
        Assert.Contains("timed out", await Fault(r));
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5));
        await WaitReady(1); // replaced
        Assert.Equal(HttpStatusCode.NoContent, (await _http.DeleteAsync($"/functions/{_fn}")).StatusCode);

        await Register(Boot("garbage", minWarm: 1, maxSlots: 1));
        await WaitReady(1);
        r = await Invoke("x");
        Assert.Equal(HttpStatusCode.BadGateway, r.StatusCode);
        Assert.Contains("protocol", await Fault(r));
        Assert.Equal(HttpStatusCode.NoContent, (await _http.DeleteAsync($"/functions/{_fn}")).StatusCode);
        AssertNothingLeft();
    }

    [SkippableFact]
    public async Task A_full_pool_answers_503_after_the_queue_timeout()
    {
        Require();
        await Register(Boot("hang", invokeMs: 5_000, minWarm: 1, maxSlots: 1, queueMs: 300));
        await WaitReady(1);
        var hung = Invoke("x");
        Assert.True(Wait.Until(() => Function().Result.GetProperty("slots_by_state").GetProperty("busy").GetInt32() == 1, 10));
        var sw = Stopwatch.StartNew();
        var r = await Invoke("y");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, r.StatusCode);
        Assert.InRange(sw.ElapsedMilliseconds, 250, 3000);
        Assert.Equal(HttpStatusCode.GatewayTimeout, (await hung).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await _http.DeleteAsync($"/functions/{_fn}")).StatusCode);
        AssertNothingLeft();
    }

    [SkippableFact]
    public async Task Slots_cloned_from_a_snapshot_serve_invocations()
    {
        Require();
        var (state, mem) = await SnapshotAgentGuest(_dir, "upper");
        await Register($$"""
            {"snapshot": {"snapshot_path": "{{state}}", "mem_file_path": "{{mem}}"}, "min_warm": 2, "max_slots": 2,
             "ready_timeout_s": 120}
            """);
        await WaitReady(2);
        Assert.Equal("snapshot", (await Function()).GetProperty("source").GetString());
        for (int i = 0; i < 50; i++)
        {
            var r = await Invoke($"clone {i}");
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            Assert.Equal($"CLONE {i}", await r.Content.ReadAsStringAsync());
        }
        Assert.Equal(HttpStatusCode.NoContent, (await _http.DeleteAsync($"/functions/{_fn}")).StatusCode);
        AssertNothingLeft();
    }

    /// <summary>
    /// Boots the test guest in agent mode in a plain flint, waits for its PONG, closes that connection (the
    /// snapshot must hold no open vsock connection: a restored guest would keep a stream the host side has lost),
    /// pauses and takes a Full snapshot. Returns the state and memory files. Also used by bench/pool.
    /// </summary>
    internal static async Task<(string State, string Mem)> SnapshotAgentGuest(string dir, string handler)
    {
        Directory.CreateDirectory(dir);
        string api = Path.Combine(dir, "snap-api.sock"), uds = Path.Combine(dir, "snap-v.sock");
        string state = Path.Combine(dir, "agent.state"), mem = Path.Combine(dir, "agent.mem");
        var psi = new ProcessStartInfo(Repo.Bin("flint"), ["--api-sock", api]) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        using var flint = Process.Start(psi)!;
        flint.StandardInput.Close();
        flint.OutputDataReceived += (_, _) => { };
        flint.ErrorDataReceived += (_, _) => { };
        flint.BeginOutputReadLine();
        flint.BeginErrorReadLine();
        try
        {
            Assert.True(Wait.Until(() => File.Exists(api), 10));
            using var vmm = new FirecrackerClient(api, new FirecrackerClientOptions { RequestTimeout = TimeSpan.FromMinutes(3) });
            await vmm.PutBootSourceAsync(new BootSource { KernelImagePath = TestGuestImage.Path, BootArgs = $"tg.tests=serial tg.boottimer=0 tg.agent=5005 tg.agent.handler={handler}" });
            await vmm.PutMachineConfigAsync(new MachineConfiguration { VcpuCount = 1, MemSizeMib = 64 });
            await vmm.PutVsockAsync(new Vsock { GuestCid = 3, UdsPath = uds });
            await vmm.StartInstanceAsync();
            var sw = Stopwatch.StartNew();
            while (true)
            {
                try
                {
                    using var a = await AgentClient.ConnectAsync(uds, 5005, TimeSpan.FromSeconds(2), default);
                    await a.PingAsync(TimeSpan.FromSeconds(2), default);
                    break;
                }
                catch (AgentException) when (sw.Elapsed < TimeSpan.FromSeconds(120)) { await Task.Delay(50); }
            }
            await Task.Delay(300); // the guest sees the close and is back in accept before it is frozen
            await vmm.PauseAsync();
            await vmm.CreateSnapshotAsync(new SnapshotCreateParams { SnapshotPath = state, MemFilePath = mem, SnapshotType = SnapshotType.Full });
            return (state, mem);
        }
        finally
        {
            if (!flint.HasExited) flint.Kill();
            flint.WaitForExit(10_000);
        }
    }
}
