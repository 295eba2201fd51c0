using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using Flint.TestGuest;
using Xunit.Abstractions;

namespace Flint.Vmm.Tests;

/// <summary>
/// Tier 2 for issue 4's devices: the test guest drives virtio-rng, virtio-balloon, virtio-net (through a real tap
/// in a network namespace this test creates, with MMDS V1/V2) and virtio-vsock (both directions) under flint on KVM.
/// </summary>
public sealed class DeviceGuestTests(ITestOutputHelper output) : IDisposable
{
    private static readonly TimeSpan T = TimeSpan.FromSeconds(120);
    private readonly string _dir = Repo.TempDir();
    private readonly List<string> _netns = [];

    public void Dispose()
    {
        foreach (var ns in _netns) Sh($"ip netns del {ns}");
        Directory.Delete(_dir, true);
    }

    private static int Sh(string cmd) => Repo.Sh(cmd).ExitCode;

    private string Config(string bootArgs, string extra)
    {
        var p = Path.Combine(_dir, "config.json");
        File.WriteAllText(p, $$"""
            {"boot-source": {"kernel_image_path": "{{TestGuestImage.Path}}", "boot_args": "{{bootArgs}}" },
             "drives": [],
             "machine-config": {"vcpu_count": 1, "mem_size_mib": 128 }{{extra}} }
            """);
        return p;
    }

    private Repo.Result Boot(string config)
    {
        var r = Repo.RunFlint(T, "--no-api", "--config-file", config);
        output.WriteLine(r.All);
        return r;
    }

    /// <summary>The config section that puts the guest's eth0 on tap0 (made by <see cref="NetnsWithTap"/>).</summary>
    private const string Tap0Interface =
        ", \"network-interfaces\": [{\"iface_id\": \"eth0\", \"host_dev_name\": \"tap0\", \"guest_mac\": \"06:00:AC:10:00:02\"}]";

    /// <summary>A network namespace (removed at the end) holding tap0 at 172.16.0.1/30, up; returns its name.</summary>
    private string NetnsWithTap(string prefix)
    {
        string ns = $"{prefix}-{Environment.ProcessId % 10000}";
        _netns.Add(ns);
        Assert.Equal(0, Sh($"ip netns add {ns} && ip netns exec {ns} ip tuntap add dev tap0 mode tap && " +
                           $"ip netns exec {ns} ip addr add 172.16.0.1/30 dev tap0 && ip netns exec {ns} ip link set tap0 up"));
        return ns;
    }

    /// <summary>Runs flint inside a network namespace (where the tap lives) with <paramref name="args"/>.</summary>
    private static Repo.Result RunInNetns(string ns, params string[] args)
    {
        var psi = new ProcessStartInfo("ip", ["netns", "exec", ns, Repo.Flint, .. args])
        { RedirectStandardOutput = true, RedirectStandardError = true };
        var sw = Stopwatch.StartNew();
        using var p = Process.Start(psi)!;
        var so = p.StandardOutput.ReadToEndAsync();
        var se = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(T)) { p.Kill(true); Assert.Fail("flint did not exit in the namespace"); }
        return new Repo.Result(p.ExitCode, so.Result, se.Result, sw.Elapsed);
    }

    [Trait("Needs", "kvm")]  // selected by the nested-KVM run (scripts/test.sh)
    [SkippableFact]
    public void Guest_reads_entropy_and_inflates_the_balloon()
    {
        KvmRequirement.Check();
        var cmd = TestGuestImage.Build().Rng().Balloon(waitMs: 2000).BootTimer(false).ToString();
        var r = Boot(Config(cmd, ", \"entropy\": {}, \"balloon\": {\"amount_mib\": 8, \"deflate_on_oom\": false, \"stats_polling_interval_s\": 1}"));
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("PASS rng", r.Stdout);
        foreach (var l in TestGuestImage.BalloonPassLines(stats: true)) Assert.Contains(l, r.Stdout);
        Assert.Matches("fail=0", r.Stdout);
    }

    [Trait("Needs", "kvm")]  // selected by the nested-KVM run (scripts/test.sh)
    [SkippableFact]
    public void Guest_arps_the_host_over_a_tap_and_talks_to_mmds_v2()
    {
        KvmRequirement.Check();
        string ns = NetnsWithTap("flint-dg");
        var cmd = TestGuestImage.Build().Net().Mmds(v2: true).BootTimer(false).ToString();
        var cfg = Config(cmd, Tap0Interface +
                              ", \"mmds-config\": {\"version\": \"V2\", \"network_interfaces\": [\"eth0\"]}");
        File.WriteAllText(Path.Combine(_dir, "meta.json"), "{\"latest\": {\"meta-data\": {\"ami-id\": \"ami-flint\"}}}");
        var r = RunInNetns(ns, "--no-api", "--metadata", Path.Combine(_dir, "meta.json"), "--config-file", cfg);
        output.WriteLine(r.All);
        Assert.Equal(0, r.ExitCode);
        foreach (var l in TestGuestImage.NetPassLines(mmds: true, mmdsV2: true)) Assert.Contains(l, r.Stdout);
        Assert.Matches("fail=0", r.Stdout);
    }

    [DllImport("libc", SetLastError = true)] private static extern int setns(int fd, int nstype);
    private const int CLONE_NEWNET = 0x40000000;

    /// <summary>Sends 1472-byte UDP datagrams to the guest's discard port from inside <paramref name="ns"/> until stopped
    /// (a thread that joins the namespace, so its socket lives there; no tool needed).</summary>
    private static Thread StartUdpFlood(string ns, ManualResetEventSlim stop)
    {
        var t = new Thread(() =>
        {
            using (var f = File.OpenHandle($"/run/netns/{ns}"))
                if (setns((int)f.DangerousGetHandle(), CLONE_NEWNET) != 0) return;
            using var s = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            var to = new IPEndPoint(IPAddress.Parse(TestGuestImage.DefaultGuestIp), 9);
            var d = new byte[1472];
            while (!stop.IsSet)
            {
                try { s.SendTo(d, to); } catch (SocketException) { Thread.Yield(); }
            }
        })
        { IsBackground = true };
        t.Start();
        return t;
    }

    [Trait("Needs", "kvm")]  // selected by the nested-KVM run (scripts/test.sh)
    [SkippableFact]
    public void Guest_moves_bulk_frames_both_ways_through_the_tap()
    {
        KvmRequirement.Check();
        string ns = NetnsWithTap("flint-tp");
        const int n = 5000;
        var cfg = Config($"tg.tests=net tg.net.tput.tx={n} tg.net.tput.rx={n} tg.boottimer=0 tg.timeout=10000",
            Tap0Interface);
        var psi = new ProcessStartInfo("ip", ["netns", "exec", ns, Repo.Flint, "--no-api", "--config-file", cfg])
        { RedirectStandardOutput = true, RedirectStandardError = true };
        using var stop = new ManualResetEventSlim();
        var log = new System.Text.StringBuilder();
        Thread? flood = null;
        using var p = Process.Start(psi)!;
        p.OutputDataReceived += (_, e) =>
        {
            if (e.Data == null) return;
            lock (log) log.AppendLine(e.Data);
            if (e.Data.StartsWith("net tput rx ready", StringComparison.Ordinal)) flood = StartUdpFlood(ns, stop);
        };
        p.BeginOutputReadLine();
        var err = p.StandardError.ReadToEndAsync();
        bool exited = p.WaitForExit(T);
        stop.Set();
        flood?.Join(5000);
        if (!exited) p.Kill(true);
        p.WaitForExit();
        string all;
        lock (log) all = log.ToString();
        output.WriteLine(all + err.Result);
        Assert.True(exited, "flint did not exit");
        Assert.Equal(0, p.ExitCode);
        Assert.Contains("PASS net-tput-tx", all);
        Assert.Contains("PASS net-tput-rx", all);
        Assert.Contains($"net tput rx done frames={n} ", all);
    }

    [Trait("Needs", "kvm")]  // selected by the nested-KVM run (scripts/test.sh)
    [SkippableFact]
    public void Vsock_connects_both_ways()
    {
        KvmRequirement.Check();
        var uds = Path.Combine(_dir, "v.sock");
        // Guest-initiated: the guest connects to host port 52, which flint maps to "<uds>_52"; echo what it sends.
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(uds + "_52"));
        listener.Listen(1);
        var echo = Task.Run(() =>
        {
            using var c = listener.Accept();
            var buf = new byte[256];
            int n = c.Receive(buf);
            c.Send(buf.AsSpan(0, n));
        });
        const uint listen = 1234;
        var cmd = TestGuestImage.Build().Vsock(port: 52, listen: listen, listenWaitMs: 20000).BootTimer(false).ToString();
        var cfg = Config(cmd, $", \"vsock\": {{\"guest_cid\": 3, \"uds_path\": \"{uds}\"}}");
        // Host-initiated: once the guest says it is listening, connect through the hybrid socket handshake.
        var host = Task.Run(() =>
        {
            var sw = Stopwatch.StartNew();
            while (!File.Exists(uds) && sw.Elapsed < T) Thread.Sleep(20);
            Thread.Sleep(500);
            for (int attempt = 0; attempt < 100; attempt++)
            {
                try
                {
                    using var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                    s.Connect(new UnixDomainSocketEndPoint(uds));
                    s.Send(Encoding.ASCII.GetBytes($"CONNECT {listen}\n"));
                    var buf = new byte[256];
                    int n = s.Receive(buf);
                    if (!Encoding.ASCII.GetString(buf, 0, n).StartsWith("OK ")) { Thread.Sleep(200); continue; }
                    s.Send("hello-from-host\n"u8);
                    n = s.Receive(buf);
                    return Encoding.ASCII.GetString(buf, 0, n);
                }
                catch (SocketException) { Thread.Sleep(200); }
            }
            return "";
        });
        var r = Boot(cfg);
        Assert.Equal(0, r.ExitCode);
        foreach (var l in TestGuestImage.VsockPassLines(connect: true, accept: true)) Assert.Contains(l, r.Stdout);
        Assert.Contains("hello-from-host", host.Result);
        Assert.True(echo.Wait(5000));
    }
}
