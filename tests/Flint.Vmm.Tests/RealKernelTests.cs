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
