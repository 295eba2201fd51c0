using System.Diagnostics;
using System.Net;
using System.Text;

namespace Flint.Pool.Tests;

/// <summary>
/// The daemon as a process (its build output, run by the dotnet host) with the real jailer and flint: every thread
/// under its seccomp filter, the jailer and flint still working under that inherited filter, SIGTERM draining
/// everything. Without KVM the slot's boot fails at InstanceStart (and that reason reaches the invoker); with KVM the
/// invocation succeeds.
/// </summary>
public sealed class DaemonProcessTests : IDisposable
{
    private readonly string _dir = Path.Combine("/tmp", $"fpd-{Guid.NewGuid():N}"[..12]);
    private readonly string _fn = "d" + Guid.NewGuid().ToString("N")[..8];

    public void Dispose()
    {
        foreach (int pid in Repo.ProcessesMentioning(_dir)) { try { Process.GetProcessById(pid).Kill(); } catch (Exception) { } }
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }

    [SkippableFact]
    public async Task The_daemon_runs_under_seccomp_starts_jailed_slots_and_drains_on_sigterm()
    {
        Skip.IfNot(Repo.IsRoot, "the jailer needs root");
        Skip.IfNot(File.Exists(Repo.Bin("flint-jailer")) && File.Exists(Repo.Bin("flint")), "artifacts/bin missing: run scripts/setup.sh");
        Directory.CreateDirectory(_dir);
        string sock = Path.Combine(_dir, "pool.sock"), pool = Path.Combine(_dir, "p");
        var psi = new ProcessStartInfo("dotnet", [Path.Combine(AppContext.BaseDirectory, "flint-pool.dll"), "--api-sock", sock, "--pool-dir", pool,
            "--jailer", Repo.Bin("flint-jailer"), "--flint", Repo.Bin("flint"), "--uid-base", "42000"])
        { RedirectStandardOutput = true, RedirectStandardError = true };
        var log = new StringBuilder();
        using var d = Process.Start(psi)!;
        d.ErrorDataReceived += (_, e) => { if (e.Data != null) lock (log) log.AppendLine(e.Data); };
        d.OutputDataReceived += (_, e) => { if (e.Data != null) lock (log) log.AppendLine(e.Data); };
        d.BeginErrorReadLine();
        d.BeginOutputReadLine();
        try
        {
            Assert.True(Wait.Until(() => File.Exists(sock), 20), "no socket: " + log);
            foreach (var t in Directory.GetDirectories($"/proc/{d.Id}/task"))
                Assert.Matches(@"Seccomp:\s+2", File.ReadAllText(Path.Combine(t, "status")));

            using var http = UnixHttp.Create(sock, TimeSpan.FromSeconds(60));
            var reg = await http.PutAsync($"/functions/{_fn}", new StringContent(
                $$"""{"kernel_image_path": "{{Flint.TestGuest.TestGuestImage.Path}}", "boot_args": "tg.tests=serial tg.boottimer=0", "handler_args": "tg.agent=5005 tg.agent.handler=upper", "mem_size_mib": 64, "min_warm": 0, "ready_timeout_s": 120}"""));
            Assert.Equal(HttpStatusCode.Created, reg.StatusCode);
            var r = await http.PostAsync($"/functions/{_fn}/invoke", new StringContent("hi"));
            string body = await r.Content.ReadAsStringAsync();
            if (File.Exists("/dev/kvm")) Assert.True(r.StatusCode == HttpStatusCode.OK && body == "HI", body + log);
            else
            {
                // The jailer (mount namespace, pivot_root, mknod, setuid) and flint ran under the daemon's filter, as far
                // as a host without KVM lets flint go.
                Assert.Equal(HttpStatusCode.BadGateway, r.StatusCode);
                Assert.Contains("PUT /actions", body);
                Assert.Contains("/dev/kvm", body);
            }
        }
        finally
        {
            using (var k = Process.Start("kill", ["-TERM", d.Id.ToString()])) k.WaitForExit();
            Assert.True(d.WaitForExit(30_000), "flint-pool did not exit after SIGTERM: " + log);
        }
        Assert.Equal(0, d.ExitCode);
        Assert.Empty(Repo.ProcessesMentioning(_dir));
        Assert.Empty(Repo.ProcessesMentioning("--id " + _fn + "-"));
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(pool, "jails", "flint")));
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(pool, "functions")));
        Assert.False(File.Exists(sock));
    }

    [Fact]
    public void The_daemons_filter_compiles_and_refuses_what_it_lists()
    {
        var program = Flint.PoolDaemon.DaemonSeccomp.Compile();
        Assert.InRange(program.Length, 10, 4096);
    }
}
