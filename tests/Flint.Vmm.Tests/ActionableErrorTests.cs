using Flint.Kvm;
using Flint.Sys;
using Flint.Vmm.Builder;
using Flint.Vmm.Config;

namespace Flint.Vmm.Tests;

/// <summary>
/// Errors a user can act on: each names what is wrong with the user's input or host, in words (never a .NET
/// exception's text), and where there is a usual fix, the fix.
/// </summary>
public sealed class ActionableErrorTests : IDisposable
{
    private readonly string _dir = Repo.TempDir();
    private readonly string _kernel;

    public ActionableErrorTests()
    {
        _kernel = Path.Combine(_dir, "vmlinux");
        File.WriteAllBytes(_kernel, new byte[64]);
    }

    public void Dispose() => Directory.Delete(_dir, true);

    [Fact]
    public void Kvm_permission_denied_names_the_kvm_group_and_the_acl_fix()
    {
        string m = KvmSystem.OpenFailure("/dev/kvm", 13).Message;
        Assert.Contains("Permission denied", m);
        Assert.Contains("kvm group", m);
        Assert.Contains("usermod -aG kvm", m);
        Assert.Contains("setfacl -m u:", m);
    }

    [Fact]
    public void A_missing_kvm_device_says_kvm_is_not_available()
    {
        var e = Assert.Throws<KvmException>(() => KvmSystem.Open(Path.Combine(_dir, "kvm")));
        Assert.Contains("does not exist", e.Message);
        Assert.Contains("kvm_intel", e.Message);
    }

    [Fact]
    public void A_drive_path_that_is_a_directory_says_so_in_the_config_file()
    {
        var cfg = $"{{\"boot-source\": {{\"kernel_image_path\": \"{_kernel}\"}}, \"drives\": [{{\"drive_id\": \"rootfs\", " +
            $"\"path_on_host\": \"{_dir}\", \"is_root_device\": true, \"is_read_only\": true}}]}}";
        var e = Assert.Throws<ConfigException>(() => ConfigLoader.Parse(cfg));
        Assert.Contains($"{_dir} is a directory", e.Message);
        Assert.Contains("disk image file or a block device", e.Message);
        Assert.DoesNotContain("Access to the path", e.Message); // .NET's text, which said nothing about directories
    }

    [Fact]
    public void A_drive_path_that_is_a_directory_is_refused_when_the_device_opens_it()
    {
        // open(O_RDONLY) succeeds on a directory: without a check a read-only "disk" that is a directory was accepted.
        var e = Assert.ThrowsAny<SysException>(() => new Flint.Devices.Virtio.Block.VirtioBlock(_dir, readOnly: true));
        Assert.Contains($"{_dir} is a directory", e.Message);
    }

    [Fact]
    public void A_vsock_socket_path_in_a_missing_directory_says_so()
    {
        string missing = Path.Combine(_dir, "no-such-dir");
        var e = Assert.ThrowsAny<SysException>(() => UnixSockets.Listen(Path.Combine(missing, "v.sock")));
        Assert.Contains($"the directory {missing} does not exist", e.Message);
    }

    [Theory]
    [InlineData(1L << 30, null)]  // 1 PiB: more than the process can map
    [InlineData(1L << 43, null)]  // 8 EiB
    [InlineData(1L << 44, null)]  // 16 EiB: its byte count does not fit in 64 bits
    [InlineData(long.MaxValue, null)]
    [InlineData(1L << 26, "2M")]  // 64 TiB of 2 MiB huge pages: mappable in principle, no host has them
    public void A_mem_size_mib_too_large_reports_the_size_asked_for(long mib, string? hugePages)
    {
        var cfg = new VmConfig
        {
            BootSource = new BootSourceConfig { KernelImagePath = _kernel },
            MachineConfig = new MachineConfig { VcpuCount = 1, MemSizeMib = mib, HugePages = hugePages },
        };
        var e = Assert.ThrowsAny<Exception>(() => VmBuilder.Build(cfg, new VmOptions { KvmPath = Path.Combine(_dir, "kvm") }));
        // Both kinds reach the user as a message (exit 1 or the API's 400), never as a crash.
        Assert.True(e is ConfigException or SysException, $"{e.GetType().Name}: {e.Message}");
        Assert.Contains($"mem_size_mib {mib}", e.Message);
        if (hugePages != null) Assert.Contains("/proc/sys/vm/nr_hugepages", e.Message);
    }
}
