using System.Net;
using System.Text.Json.Nodes;
using Flint.Client.Models;
using Flint.TestGuest;

namespace Flint.Client.Tests;

/// <summary>The client against the real, published flint process (artifacts/bin/flint --api-sock).</summary>
public sealed class FlintProcessTests(Xunit.Abstractions.ITestOutputHelper log)
{
    private static readonly FirecrackerClientOptions Options = new() { RequestTimeout = TimeSpan.FromSeconds(20) };

    [Fact]
    public async Task A_vm_configured_through_the_client_is_what_vm_config_reports()
    {
        // In a network namespace with a TAP where this machine allows one, so that MMDS can be configured too.
        using var flint = FlintProcess.Start("client-cfg", withTap: true) ?? FlintProcess.Start("client-cfg")!;
        bool haveTap = flint.HasTap;
        log.WriteLine(haveTap ? "flint runs in a network namespace with tap0: network interface and MMDS config included"
                              : "no network namespace with a TAP here: network interface and MMDS config left out");
        using var vmm = new FirecrackerClient(flint.SocketPath, Options);
        string P(string name) => Path.Combine(flint.Dir, name);
        foreach (var f in new[] { "flint.log", "metrics.json" }) File.WriteAllText(P(f), "");
        File.WriteAllBytes(P("rootfs.ext4"), new byte[1 << 20]);
        File.WriteAllBytes(P("data.img"), new byte[1 << 20]);

        var info = await vmm.GetInstanceInfoAsync();
        Assert.Equal(("client-cfg", InstanceStates.NotStarted), (info.Id, info.State));
        Assert.Equal("Firecracker", info.AppName);
        Assert.False(string.IsNullOrEmpty((await vmm.GetVersionAsync()).Version));

        await vmm.PutLoggerAsync(new Logger { LogPath = P("flint.log"), Level = LogLevels.Debug, ShowLevel = true, ShowLogOrigin = false });
        await vmm.PutMetricsAsync(new Metrics { MetricsPath = P("metrics.json") });
        await vmm.PutBootSourceAsync(new BootSource { KernelImagePath = TestGuestImage.Path, BootArgs = "console=ttyS0 reboot=k panic=1" });
        await vmm.PutMachineConfigAsync(new MachineConfiguration { VcpuCount = 2, MemSizeMib = 256, Smt = false, TrackDirtyPages = true });
        await vmm.PatchMachineConfigAsync(new MachineConfigurationUpdate { MemSizeMib = 192 });
        await vmm.PutDriveAsync(new Drive { DriveId = "rootfs", PathOnHost = P("rootfs.ext4"), IsRootDevice = true, IsReadOnly = true });
        var limiter = new RateLimiter { Bandwidth = new TokenBucket { Size = 1048576, RefillTime = 100 }, Ops = new TokenBucket { Size = 100, OneTimeBurst = 10, RefillTime = 1000 } };
        await vmm.PutDriveAsync(new Drive { DriveId = "data", PathOnHost = P("data.img"), IsRootDevice = false, IsReadOnly = false, CacheType = CacheTypes.Writeback, RateLimiter = limiter });
        await vmm.PutVsockAsync(new Vsock { GuestCid = 3, UdsPath = P("v.sock") });
        await vmm.PutEntropyAsync(new EntropyDevice());
        await vmm.PutBalloonAsync(new Balloon { AmountMib = 16, DeflateOnOom = true, StatsPollingIntervalS = 1 });
        if (haveTap)
        {
            await vmm.PutNetworkInterfaceAsync(new NetworkInterface { IfaceId = "eth0", HostDevName = "tap0", GuestMac = "06:00:AC:10:00:02" });
            await vmm.PutMmdsConfigAsync(new MmdsConfig { NetworkInterfaces = ["eth0"], Version = MmdsVersions.V2, Ipv4Address = "169.254.170.2" });
        }
        await vmm.PutMmdsAsync(JsonNode.Parse("""{"latest":{"meta-data":{"ami-id":"ami-12345678"}}}""")!);
        await vmm.PatchMmdsAsync(JsonNode.Parse("""{"latest":{"meta-data":{"hostname":"vm1"}}}""")!);

        var mmds = await vmm.GetMmdsAsync();
        Assert.Equal("ami-12345678", (string?)mmds!["latest"]!["meta-data"]!["ami-id"]);
        Assert.Equal("vm1", (string?)mmds["latest"]!["meta-data"]!["hostname"]);

        var mc = await vmm.GetMachineConfigAsync();
        Assert.Equal((2, 192, true), (mc.VcpuCount, mc.MemSizeMib, mc.TrackDirtyPages));

        var balloon = await vmm.GetBalloonAsync();
        Assert.Equal((16, true, 1), (balloon.AmountMib, balloon.DeflateOnOom, balloon.StatsPollingIntervalS));

        var cfg = await vmm.GetVmConfigAsync();
        Assert.Equal(TestGuestImage.Path, cfg.BootSource!.KernelImagePath);
        Assert.Equal("console=ttyS0 reboot=k panic=1", cfg.BootSource.BootArgs);
        Assert.Equal((2, 192), (cfg.MachineConfig!.VcpuCount, cfg.MachineConfig.MemSizeMib));
        Assert.Equal(["rootfs", "data"], cfg.Drives!.Select(d => d.DriveId));
        var root = cfg.Drives![0];
        Assert.Equal((P("rootfs.ext4"), true, true), (root.PathOnHost, root.IsRootDevice, root.IsReadOnly));
        var data = cfg.Drives[1];
        Assert.Equal((P("data.img"), CacheTypes.Writeback), (data.PathOnHost, data.CacheType));
        Assert.Equal(limiter.Ops, data.RateLimiter!.Ops);
        Assert.Equal((1048576L, 100L), (data.RateLimiter.Bandwidth!.Size, data.RateLimiter.Bandwidth.RefillTime));
        Assert.Equal((3u, P("v.sock")), (cfg.Vsock!.GuestCid, cfg.Vsock.UdsPath));
        Assert.NotNull(cfg.Entropy);
        Assert.Equal(16, cfg.Balloon!.AmountMib);
        // Firecracker's GET /vm/config never reports the logger and metrics it was given (both null), nor does Flint.
        Assert.Null(cfg.Metrics);
        Assert.Null(cfg.Logger);
        if (haveTap)
        {
            // Firecracker writes MACs in lower case.
            Assert.Equal(("eth0", "tap0", "06:00:ac:10:00:02"), (cfg.NetworkInterfaces!.Single().IfaceId, cfg.NetworkInterfaces!.Single().HostDevName, cfg.NetworkInterfaces!.Single().GuestMac));
            Assert.Equal((MmdsVersions.V2, "169.254.170.2"), (cfg.MmdsConfig!.Version, cfg.MmdsConfig.Ipv4Address));
            Assert.Equal(["eth0"], cfg.MmdsConfig.NetworkInterfaces);
        }

        // FlushMetrics is a runtime action (Firecracker main refuses it before the start): a typed refusal.
        var refused = await Assert.ThrowsAsync<FirecrackerApiException>(() => vmm.FlushMetricsAsync());
        Assert.Equal("The requested operation is not supported before starting the microVM.", refused.FaultMessage);
    }

    [Fact]
    public async Task Flints_refusals_come_back_as_typed_exceptions_and_the_process_keeps_serving()
    {
        using var flint = FlintProcess.Start("client-err")!;
        using var vmm = new FirecrackerClient(flint.SocketPath, Options);

        var e = await Assert.ThrowsAsync<FirecrackerApiException>(() => vmm.PutMachineConfigAsync(new MachineConfiguration { VcpuCount = 0, MemSizeMib = 128 }));
        Assert.Equal(HttpStatusCode.BadRequest, e.StatusCode);
        Assert.Contains("vCPU", e.FaultMessage, StringComparison.OrdinalIgnoreCase);

        e = await Assert.ThrowsAsync<FirecrackerApiException>(() => vmm.PauseAsync());
        Assert.Equal("The requested operation is not supported before starting the microVM.", e.FaultMessage);

        e = await Assert.ThrowsAsync<FirecrackerApiException>(() => vmm.PutDriveAsync(
            new Drive { DriveId = "rootfs", PathOnHost = Path.Combine(flint.Dir, "missing.ext4"), IsRootDevice = true, IsReadOnly = false }));
        Assert.Equal(HttpStatusCode.BadRequest, e.StatusCode);
        Assert.Contains("missing.ext4", e.FaultMessage);

        var metrics = Path.Combine(flint.Dir, "m.json");
        File.WriteAllText(metrics, "");
        await vmm.PutMetricsAsync(new Metrics { MetricsPath = metrics });
        e = await Assert.ThrowsAsync<FirecrackerApiException>(() => vmm.PutMetricsAsync(new Metrics { MetricsPath = metrics }));
        Assert.Equal(HttpStatusCode.BadRequest, e.StatusCode);
        Assert.False(string.IsNullOrWhiteSpace(e.FaultMessage));

        if (!File.Exists("/dev/kvm"))
        {
            // Without KVM the start fails cleanly, naming the cause.
            await vmm.PutBootSourceAsync(new BootSource { KernelImagePath = TestGuestImage.Path });
            e = await Assert.ThrowsAsync<FirecrackerApiException>(() => vmm.StartInstanceAsync());
            Assert.Contains("/dev/kvm", e.FaultMessage);
        }

        Assert.Equal(InstanceStates.NotStarted, (await vmm.GetInstanceInfoAsync()).State);
    }

    [Trait("Needs", "kvm")]  // selected by the nested-KVM run (scripts/test.sh)
    [SkippableFact]
    public async Task Getting_started_through_the_client_boots_the_test_guest_pauses_and_resumes_it()
    {
        Skip.IfNot(File.Exists("/dev/kvm"), "/dev/kvm is absent on this machine: KVM tests cannot run here");
        using var flint = FlintProcess.Start("client-kvm")!;
        using var vmm = new FirecrackerClient(flint.SocketPath, Options);
        // 300 k PIO exits keep the guest running while it is paused and resumed (as ApiProcessTests does).
        await vmm.PutBootSourceAsync(new BootSource { KernelImagePath = TestGuestImage.Path, BootArgs = "tg.tests=serial tg.pio=300000" });
        await vmm.PutMachineConfigAsync(new MachineConfiguration { VcpuCount = 1, MemSizeMib = 64 });
        await vmm.StartInstanceAsync();
        Assert.Equal(InstanceStates.Running, (await vmm.GetInstanceInfoAsync()).State);
        await vmm.PauseAsync();
        Assert.Equal(InstanceStates.Paused, (await vmm.GetInstanceInfoAsync()).State);
        await vmm.ResumeAsync();
        var e = await Assert.ThrowsAsync<FirecrackerApiException>(() => vmm.PutBootSourceAsync(new BootSource { KernelImagePath = TestGuestImage.Path }));
        Assert.Equal("The requested operation is not supported after starting the microVM.", e.FaultMessage);
        Assert.True(flint.WaitForOutput("fail=0", TimeSpan.FromSeconds(120)), $"the test guest did not report fail=0:\n{flint.Output}");
    }
}
