using System.Diagnostics;
using System.Net.Sockets;
using System.Text.Json;
using Flint.TestGuest;
using Xunit.Abstractions;

namespace Flint.Vmm.Tests;

/// <summary>
/// A network interface hot-plugged after InstanceStart under --enable-pci, through the real flint process running in a
/// network namespace that holds a tap at the host's address. Without KVM: flint in that namespace accepts the interface
/// on the tap before the start (the setup the KVM test stands on). On KVM: the test guest (tests/testguest/pci.c,
/// tg.tests=pcihp tg.pcihp.net=1) rescans the bus, finds the new virtio-net function, sets up its rx and tx queues
/// over virtio-pci, ARPs the host through the tap and gets the kernel's reply, releases the function; the host DELETEs
/// the interface and the guest's rescan finds the slot empty.
/// </summary>
public sealed class PciNetHotplugKvmTests(ITestOutputHelper output) : IDisposable
{
    private static readonly TimeSpan T = TimeSpan.FromSeconds(180);
    private readonly string _dir = Repo.TempDir();
    private string? _netns;

    public void Dispose()
    {
        if (_netns != null) Sh($"ip netns del {_netns}");
        Directory.Delete(_dir, true);
    }

    /// <summary>A shell command (ip netns, ip tuntap) through Repo's bounded runner: 30 s at most.</summary>
    private static (int Code, string Out) Sh(string cmd)
    {
        var r = Repo.Sh(cmd);
        return (r.ExitCode, r.Stdout + r.Stderr);
    }

    /// <summary>A network namespace (removed by Dispose) holding tap0 at the host address /30, up; returns tap0's MAC.</summary>
    private string NetnsWithTap()
    {
        _netns = $"flint-nh-{Environment.ProcessId % 10000}";
        var r = Sh($"ip netns add {_netns} && ip netns exec {_netns} ip tuntap add dev tap0 mode tap && " +
                   $"ip netns exec {_netns} ip addr add {TestGuestImage.DefaultHostIp}/30 dev tap0 && " +
                   $"ip netns exec {_netns} ip link set tap0 up && ip netns exec {_netns} cat /sys/class/net/tap0/address");
        Skip.If(r.Code != 0, $"no network namespace with a tap here: {r.Out}");
        return r.Out.Trim();
    }

    private static string Fault(string body) => JsonDocument.Parse(body).RootElement.GetProperty("fault_message").GetString()!;

    private const string Iface = "{\"iface_id\": \"hot\", \"host_dev_name\": \"tap0\", \"guest_mac\": \"06:00:AC:10:00:02\"}";

    private static void Stop(Process p)
    {
        if (!p.HasExited) p.Kill();
        p.WaitForExit();
    }

    [SkippableFact]
    public void Flint_in_a_namespace_takes_an_interface_on_its_tap_before_the_start()
    {
        NetnsWithTap();
        string sock = Path.Combine(_dir, "api.sock");
        using var p = Repo.StartWithApiInNetns(_netns!, sock, "--enable-pci");
        try
        {
            using var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            s.Connect(new UnixDomainSocketEndPoint(sock));
            var r = ApiHttp.Request(s, "PUT", "/network-interfaces/hot", Iface);
            Assert.True(r.Status == 204, r.Body);
            Assert.Contains("\"iface_id\":\"hot\"", ApiHttp.Request(s, "GET", "/vm/config").Body);
            r = ApiHttp.Request(s, "DELETE", "/network-interfaces/hot");
            Assert.Equal((400, "The requested operation is not supported before starting the microVM."), (r.Status, Fault(r.Body)));
        }
        finally
        {
            Stop(p);
            output.WriteLine(Repo.Output(p));
        }
    }

    [Trait("Needs", "kvm")]  // selected by the nested-KVM run (scripts/test.sh)
    [SkippableFact]
    public void Guest_finds_a_network_interface_plugged_after_the_start_arps_the_host_over_it_and_sees_it_go()
    {
        KvmRequirement.Check();
        string tapMac = NetnsWithTap();
        string sock = Path.Combine(_dir, "api.sock");
        var cmd = TestGuestImage.Build().Tests("pcihp").Option("tg.hold=", 1).Option("tg.pcihp.net=", 1).Option("tg.pcihp.wait=", 60000)
            .BootTimer(false).ToString();
        // The log goes to a file: on stdout its lines would cut into the guest's console lines.
        string log = Path.Combine(_dir, "flint.log");
        using var p = Repo.StartWithApiInNetns(_netns!, sock, "--enable-pci", "--log-path", log);
        try
        {
            using var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            s.Connect(new UnixDomainSocketEndPoint(sock));
            Assert.Equal(204, ApiHttp.Request(s, "PUT", "/boot-source",
                $"{{\"kernel_image_path\": \"{TestGuestImage.Path}\", \"boot_args\": \"{cmd}\"}}").Status);
            Assert.Equal(204, ApiHttp.Request(s, "PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 64}").Status);
            Assert.Equal(204, ApiHttp.Request(s, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}").Status);
            Repo.WaitForOutput(p, T, "pcihp waiting");

            var r = ApiHttp.Request(s, "PUT", "/network-interfaces/hot", Iface);
            Assert.True(r.Status == 204, r.Body);
            Assert.Contains("\"iface_id\":\"hot\"", ApiHttp.Request(s, "GET", "/vm/config").Body);
            Repo.WaitForOutput(p, T, "pcihp released");
            string o = Repo.Output(p);
            Assert.Contains(TestGuestImage.Pass("pcihp-found"), o);
            Assert.Contains("pcihp net mac=06:00:ac:10:00:02", o);  // the guest_mac, from the function's device config
            Assert.Contains("pcihp net arp-reply " + tapMac, o);    // the host kernel answered through the tap
            Assert.Contains(TestGuestImage.Pass("pcihp-use"), o);

            Assert.Equal(204, ApiHttp.Request(s, "DELETE", "/network-interfaces/hot").Status);
            Assert.DoesNotContain("\"iface_id\":\"hot\"", ApiHttp.Request(s, "GET", "/vm/config").Body);
            Repo.WaitForOutput(p, T, TestGuestImage.Pass("pcihp") + "\n");
            Assert.Contains(TestGuestImage.Pass("pcihp-gone"), Repo.Output(p));
            Assert.DoesNotContain("FAIL", Repo.Output(p));
            output.WriteLine(File.ReadAllText(log));
        }
        finally
        {
            Stop(p);
            output.WriteLine(Repo.Output(p));
        }
    }
}
