using Xunit.Abstractions;

namespace Flint.Vmm.Tests;

/// <summary>
/// Tier 3: the real Linux 6.1 guest kernel (artifacts/guest, from ../shared/guest or built by guest/) boots under
/// flint with its rootfs on virtio-blk. On kvm_pvm hosts user space cannot run, so the milestone is the kernel's
/// `Run /sbin/init as init process`; on VMX/SVM hosts the rootfs init's own line and the boot timer are checked.
/// </summary>
public class RealKernelTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Repo.TempDir();

    public void Dispose() => Directory.Delete(_dir, true);

    [Trait("Needs", "kvm")]  // selected by the nested-KVM run (scripts/test.sh)
    [SkippableFact]
    public void Kernel_mounts_rootfs_on_virtio_blk_and_starts_init()
    {
        KvmRequirement.Check();
        var vmlinux = Path.Combine(Repo.GuestDir, "vmlinux");
        var rootfs = Path.Combine(_dir, "rootfs.ext4");
        Assert.True(File.Exists(vmlinux), $"{vmlinux} missing: run scripts/setup.sh");
        File.Copy(Path.Combine(Repo.GuestDir, "rootfs.ext4"), rootfs);
        var cfg = Path.Combine(_dir, "config.json");
        File.WriteAllText(cfg, $$"""
            {"boot-source": {"kernel_image_path": "{{vmlinux}}", "boot_args": "console=ttyS0 reboot=k panic=1"},
             "drives": [{"drive_id": "rootfs", "path_on_host": "{{rootfs}}", "is_root_device": true, "is_read_only": false}],
             "machine-config": {"vcpu_count": 1, "mem_size_mib": 128} }
            """);
        bool pvm = Directory.Exists("/sys/module/kvm_pvm");
        string milestone = pvm ? "Run /sbin/init as init process" : "FLINT_GUEST_INIT_OK";
        var (seen, r) = Repo.RunFlintUntil(TimeSpan.FromSeconds(pvm ? 240 : 60), l => l.Contains(milestone),
            "--no-api", "--boot-timer", "--config-file", cfg);
        output.WriteLine(r.All);
        Assert.True(seen, $"the kernel did not print '{milestone}' within the limit");
        Assert.Contains("virtio_blk virtio0: [vda]", r.Stdout);
        Assert.Contains("VFS: Mounted root", r.Stdout);
        output.WriteLine($"milestone after {r.Elapsed.TotalSeconds:F1} s");
    }
}

/// <summary>
/// Tier 3 network: the real kernel configures eth0 with `ip=` over virtio-net on a tap in a test-made namespace and
/// answers ARP and ping from the host side. `root=/dev/vdz rootwait` keeps it waiting for a disk forever, so the kernel
/// stays alive without user space (which cannot run on kvm_pvm hosts).
/// </summary>
public sealed class RealKernelNetworkTests(ITestOutputHelper output) : IDisposable
{
    private readonly string _dir = Repo.TempDir();
    private readonly string _ns = $"flint-rk-{Environment.ProcessId % 10000}";

    public void Dispose()
    {
        using (var p = System.Diagnostics.Process.Start("ip", ["netns", "del", _ns])) p.WaitForExit();
        Directory.Delete(_dir, true);
    }

    [Trait("Needs", "kvm")]  // selected by the nested-KVM run (scripts/test.sh)
    [SkippableFact]
    public void Kernel_ip_autoconfig_answers_ping_across_the_tap()
    {
        KvmRequirement.Check();
        var vmlinux = Path.Combine(Repo.GuestDir, "vmlinux");
        static void Sh(string c) => Repo.Sh(c);
        Sh($"ip netns add {_ns} && ip netns exec {_ns} ip tuntap add dev tap0 mode tap && ip netns exec {_ns} ip addr add 172.16.0.1/30 dev tap0 && ip netns exec {_ns} ip link set tap0 up");
        var cfg = Path.Combine(_dir, "config.json");
        File.WriteAllText(cfg, $$"""
            {"boot-source": {"kernel_image_path": "{{vmlinux}}", "boot_args": "console=ttyS0 reboot=k panic=1 root=/dev/vdz rootwait ip=172.16.0.2::172.16.0.1:255.255.255.252::eth0:off" },
             "drives": [],
             "network-interfaces": [{"iface_id": "eth0", "host_dev_name": "tap0", "guest_mac": "06:00:AC:10:00:02"}],
             "machine-config": {"vcpu_count": 1, "mem_size_mib": 128 } }
            """);
        var psi = new System.Diagnostics.ProcessStartInfo("ip", ["netns", "exec", _ns, Repo.Flint, "--no-api", "--config-file", cfg])
        { RedirectStandardOutput = true, RedirectStandardError = true };
        using var flint = System.Diagnostics.Process.Start(psi)!;
        var log = new System.Text.StringBuilder();
        var configured = new ManualResetEventSlim();
        flint.OutputDataReceived += (_, e) => { if (e.Data == null) return; lock (log) log.AppendLine(e.Data); if (e.Data.Contains("IP-Config: Complete")) configured.Set(); };
        flint.BeginOutputReadLine();
        try
        {
            Assert.True(configured.Wait(TimeSpan.FromSeconds(180)), "no IP-Config: Complete");
            bool answered = false;
            for (int i = 0; i < 10 && !answered; i++)
            {
                using var ping = System.Diagnostics.Process.Start("ip", ["netns", "exec", _ns, "ping", "-c", "1", "-W", "5", "172.16.0.2"]);
                ping.WaitForExit();
                answered = ping.ExitCode == 0;
            }
            Assert.True(answered, "the guest kernel did not answer ping");
        }
        finally
        {
            flint.Kill(true);
            flint.WaitForExit();
            lock (log) output.WriteLine(log.ToString());
        }
    }
}
