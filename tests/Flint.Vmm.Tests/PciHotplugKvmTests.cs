using System.Diagnostics;
using System.Net.Sockets;
using System.Text.Json;
using Flint.TestGuest;
using Xunit.Abstractions;

namespace Flint.Vmm.Tests;

/// <summary>
/// PCI device hotplug through the real flint process. Without KVM: the API's refusals before the start (DELETE is
/// post-boot only; ids checked first) with --enable-pci. On KVM: the test guest (tests/testguest/pci.c, tg.tests=pcihp)
/// boots under --enable-pci, the host PUTs a drive after InstanceStart, the guest's rescan finds it and reads and
/// writes it over virtio-pci, releases it, the host DELETEs it and the guest's rescan finds the slot empty; then a
/// hundred plug/unplug cycles leave flint with the fds it had (counted in /proc/PID/fd).
/// </summary>
public sealed class PciHotplugKvmTests(ITestOutputHelper output) : IDisposable
{
    private static readonly TimeSpan T = TimeSpan.FromSeconds(180);
    private readonly string _dir = Repo.TempDir();

    public void Dispose() => Directory.Delete(_dir, true);

    private static string Fault(string body) => JsonDocument.Parse(body).RootElement.GetProperty("fault_message").GetString()!;

    private static string Drive(string id, string path) =>
        $"{{\"drive_id\": \"{id}\", \"path_on_host\": \"{path}\", \"is_root_device\": false, \"is_read_only\": false}}";

    [Fact]
    public void Before_the_start_delete_is_refused_as_firecracker_refuses_it()
    {
        string sock = Path.Combine(_dir, "api.sock");
        using var p = Repo.StartWithApi(sock, "--enable-pci");
        try
        {
            using var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            s.Connect(new UnixDomainSocketEndPoint(sock));
            var r = ApiHttp.Request(s, "DELETE", "/drives/data");
            Assert.Equal((400, "The requested operation is not supported before starting the microVM."), (r.Status, Fault(r.Body)));
            r = ApiHttp.Request(s, "DELETE", "/network-interfaces/eth0");
            Assert.Equal((400, "The requested operation is not supported before starting the microVM."), (r.Status, Fault(r.Body)));
            r = ApiHttp.Request(s, "DELETE", "/pmem/a-b");
            Assert.Equal((400, "API Resource IDs can only contain alphanumeric characters and underscores."), (r.Status, Fault(r.Body)));
            // Before the start a PUT configures, with or without the flag, as before.
            string disk = Path.Combine(_dir, "d.img");
            TestGuestImage.WriteDisk(disk, 8);
            Assert.Equal(204, ApiHttp.Request(s, "PUT", "/drives/data", Drive("data", disk)).Status);
            Assert.Contains("\"drive_id\":\"data\"", ApiHttp.Request(s, "GET", "/vm/config").Body);
        }
        finally
        {
            if (!p.HasExited) p.Kill();
            p.WaitForExit();
        }
    }

    private static int FdCount(Process p) => Directory.GetFiles($"/proc/{p.Id}/fd").Length;

    [Trait("Needs", "kvm")]  // selected by the nested-KVM run (scripts/test.sh)
    [SkippableFact]
    public void Guest_finds_uses_and_loses_a_drive_plugged_after_the_start()
    {
        KvmRequirement.Check();
        string sock = Path.Combine(_dir, "api.sock");
        string disk = Path.Combine(_dir, "hot.img");
        TestGuestImage.WriteDisk(disk, 64);
        var cmd = TestGuestImage.Build().Tests("pcihp").Option("tg.hold=", 1).Option("tg.pcihp.wait=", 60000).BootTimer(false).ToString();
        // The log goes to a file: on stdout its lines cut into the guest's console lines (the merged nested run saw
        // "PASS pc" + a log line + "ihp-gone" while the guest passed all four checks).
        string log = Path.Combine(_dir, "flint.log");
        using var p = Repo.StartWithApi(sock, "--enable-pci", "--log-path", log);
        try
        {
            using var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            s.Connect(new UnixDomainSocketEndPoint(sock));
            Assert.Equal(204, ApiHttp.Request(s, "PUT", "/boot-source",
                $"{{\"kernel_image_path\": \"{TestGuestImage.Path}\", \"boot_args\": \"{cmd}\"}}").Status);
            Assert.Equal(204, ApiHttp.Request(s, "PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 64}").Status);
            Assert.Equal(204, ApiHttp.Request(s, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}").Status);
            Repo.WaitForOutput(p, T, "pcihp waiting");

            var r = ApiHttp.Request(s, "DELETE", "/drives/hot");
            Assert.Equal((400, "Device not found"), (r.Status, Fault(r.Body)));
            // A vhost-user drive needs guest memory a backend can map; this VM's is private (no such drive at boot).
            r = ApiHttp.Request(s, "PUT", "/drives/vu", $"{{\"drive_id\": \"vu\", \"socket\": \"{Path.Combine(_dir, "none.sock")}\", \"is_root_device\": false}}");
            Assert.Equal(400, r.Status);
            Assert.Contains("needs guest memory a backend can map", Fault(r.Body));
            Assert.DoesNotContain("\"drive_id\":\"vu\"", ApiHttp.Request(s, "GET", "/vm/config").Body);

            // A hostile sequence first, while the guest scans for a new drive (a pmem function is not one): plug,
            // unplug and re-add the same id a hundred times. No fd and no KVM slot may stay behind (a leaked slot
            // or window would make a later plug fail).
            string pm = Path.Combine(_dir, "pm.img");
            File.WriteAllBytes(pm, new byte[2 << 20]);
            int fds = FdCount(p);
            for (int i = 0; i < 100; i++)
            {
                r = ApiHttp.Request(s, "PUT", "/pmem/churn", $"{{\"id\": \"churn\", \"path_on_host\": \"{pm}\"}}");
                Assert.True(r.Status == 204, r.Body);
                Assert.Equal(204, ApiHttp.Request(s, "DELETE", "/pmem/churn").Status);
            }
            Assert.Equal(fds, FdCount(p));

            r = ApiHttp.Request(s, "PUT", "/drives/hot", Drive("hot", disk));
            Assert.True(r.Status == 204, r.Body);
            Assert.Contains("\"drive_id\":\"hot\"", ApiHttp.Request(s, "GET", "/vm/config").Body);
            r = ApiHttp.Request(s, "PUT", "/drives/hot", Drive("hot", disk));
            Assert.Equal((400, "Device ID in use"), (r.Status, Fault(r.Body)));
            Repo.WaitForOutput(p, T, "pcihp released");
            Assert.Contains(TestGuestImage.Pass("pcihp-found"), Repo.Output(p));
            Assert.Contains(TestGuestImage.Pass("pcihp-use"), Repo.Output(p));

            Assert.Equal(204, ApiHttp.Request(s, "DELETE", "/drives/hot").Status);
            Assert.DoesNotContain("\"drive_id\":\"hot\"", ApiHttp.Request(s, "GET", "/vm/config").Body);
            Repo.WaitForOutput(p, T, TestGuestImage.Pass("pcihp") + "\n");
            Assert.Contains(TestGuestImage.Pass("pcihp-gone"), Repo.Output(p));
            var sector5 = new byte[512];
            using (var f = File.OpenRead(disk)) { f.Seek(5 * 512, SeekOrigin.Begin); f.ReadExactly(sector5); }
            Assert.True(TestGuestImage.SectorMatchesWritePattern(sector5, 5), "the guest's write to the hot-plugged drive reached its file");

            output.WriteLine(Repo.Output(p));
            output.WriteLine(File.ReadAllText(log));
        }
        finally
        {
            if (!p.HasExited) p.Kill();
            p.WaitForExit();
            output.WriteLine(Repo.Output(p));
        }
    }
}
