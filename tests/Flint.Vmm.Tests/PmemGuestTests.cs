using System.Text;
using Flint.TestGuest;
using Xunit.Abstractions;

namespace Flint.Vmm.Tests;

/// <summary>
/// virtio-pmem on KVM through the real flint binary: the test guest (tests/testguest/pmem.c) reads the device's config
/// space, maps the window Firecracker places at 512 GiB, finds the host's marker there, writes its own and flushes; the
/// host then finds the guest's bytes in the file. Read-only: the guest's store exits as MMIO and is discarded, the
/// file is unchanged and the VMM carries on.
/// </summary>
public sealed class PmemGuestTests(ITestOutputHelper output) : IDisposable
{
    private static readonly TimeSpan T = TimeSpan.FromSeconds(120);
    private readonly string _dir = Repo.TempDir();

    public void Dispose() => Directory.Delete(_dir, true);

    /// <summary>A backing file of 3 MiB + 4 KiB (window padded to 4 MiB) with the host's marker at offset 0.</summary>
    private string BackingFile()
    {
        string p = Path.Combine(_dir, "pmem.img");
        var bytes = new byte[(3 << 20) + 4096];
        Encoding.ASCII.GetBytes("FLINT-PMEM-HOST!").CopyTo(bytes, 0);
        File.WriteAllBytes(p, bytes);
        return p;
    }

    private Repo.Result Boot(string backing, bool readOnly)
    {
        var cmd = TestGuestImage.Build().Tests("pmem").Option("tg.pmem.ro=", readOnly ? 1 : 0).BootTimer(false).ToString();
        var cfg = Path.Combine(_dir, "config.json");
        File.WriteAllText(cfg, $$"""
            {"boot-source": {"kernel_image_path": "{{TestGuestImage.Path}}", "boot_args": "{{cmd}}" },
             "drives": [],
             "machine-config": {"vcpu_count": 1, "mem_size_mib": 128 },
             "pmem": [{"id": "pmem0", "path_on_host": "{{backing}}", "read_only": {{(readOnly ? "true" : "false")}} }] }
            """);
        var r = Repo.RunFlint(T, "--no-api", "--config-file", cfg);
        output.WriteLine(r.All);
        return r;
    }

    [Trait("Needs", "kvm")]
    [SkippableFact]
    public void Guest_reads_the_window_writes_flushes_and_the_file_has_its_bytes()
    {
        KvmRequirement.Check();
        string backing = BackingFile();
        var r = Boot(backing, readOnly: false);
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("pmem start=0x8000000000 size=0x400000", r.Stdout);
        Assert.Contains("pmem host-marker=ok readback=same flush=0x0 len=4", r.Stdout);
        Assert.Contains("PASS pmem", r.Stdout);
        Assert.Matches("fail=0", r.Stdout);
        var file = File.ReadAllBytes(backing);
        Assert.Equal((3 << 20) + 4096, file.Length);
        Assert.Equal("FLINT-PMEM-GUEST", Encoding.ASCII.GetString(file, 4096, 16));
    }

    [Trait("Needs", "kvm")]
    [SkippableFact]
    public void Read_only_window_discards_the_guests_write_and_the_vmm_survives()
    {
        KvmRequirement.Check();
        string backing = BackingFile();
        var before = File.ReadAllBytes(backing);
        var r = Boot(backing, readOnly: true);
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("pmem host-marker=ok readback=old flush=0x0 len=4", r.Stdout);
        Assert.Contains("PASS pmem", r.Stdout);
        Assert.Contains("read-only pmem window discarded", r.All);
        Assert.Equal(before, File.ReadAllBytes(backing));
    }

    [Trait("Needs", "kvm")]
    [SkippableFact]
    public void A_missing_backing_file_fails_the_start_in_firecrackers_words()
    {
        KvmRequirement.Check();
        var r = Boot(Path.Combine(_dir, "missing.img"), readOnly: false);
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("Cannot create pmem device: Error accessing backing file: No such file or directory (os error 2)", r.All);
    }
}
