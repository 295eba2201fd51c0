using Flint.TestGuest;
using Xunit.Abstractions;

namespace Flint.Vmm.Tests;

/// <summary>
/// --enable-pci on KVM: the freestanding test guest (tests/testguest/pci.c) enumerates the PCI segment through ECAM
/// and the 0xCF8 ports, sizes and maps the virtio-blk function's BAR, programs MSI-X, and reads and writes the disk
/// over virtio-pci, checking each MSI-X message in its local APIC (delivered, and held while masked).
/// </summary>
public sealed class PciGuestTests(ITestOutputHelper output) : IDisposable
{
    private static readonly TimeSpan T = TimeSpan.FromSeconds(120);
    private readonly string _dir = Repo.TempDir();

    public void Dispose() => Directory.Delete(_dir, true);

    private string Config(string bootArgs)
    {
        var disk = Path.Combine(_dir, "disk.img");
        TestGuestImage.WriteDisk(disk, 64);
        var p = Path.Combine(_dir, "config.json");
        File.WriteAllText(p, $$"""
            {"boot-source": {"kernel_image_path": "{{TestGuestImage.Path}}", "boot_args": "{{bootArgs}}" },
             "drives": [{"drive_id": "data", "path_on_host": "{{disk}}", "is_root_device": false, "is_read_only": false}],
             "machine-config": {"vcpu_count": 1, "mem_size_mib": 64 } }
            """);
        return p;
    }

    [Trait("Needs", "kvm")]  // selected by the nested-KVM run (scripts/test.sh)
    [SkippableFact]
    public void Guest_drives_virtio_blk_over_pci_with_msix()
    {
        KvmRequirement.Check();
        var r = Repo.RunFlint(T, "--no-api", "--enable-pci", "--config-file", Config("tg.tests=serial,pci"));
        output.WriteLine(r.All);
        Assert.Equal(0, r.ExitCode);
        foreach (var line in new[] { "PASS pci-enum", "PASS pci-cf8", "PASS pci-bar", "PASS pci-caps", "PASS pci-blk-read",
                     "PASS pci-msix-irq", "PASS pci-blk-write", "PASS pci-msix-mask", "PASS pci\n" })
            Assert.Contains(line, r.Stdout);
        Assert.Matches(@"FLINT-TESTGUEST done pass=\d+ fail=0", r.Stdout);
        var sector5 = new byte[512];
        using (var f = File.OpenRead(Path.Combine(_dir, "disk.img"))) { f.Seek(5 * 512, SeekOrigin.Begin); f.ReadExactly(sector5); }
        Assert.True(TestGuestImage.SectorMatchesWritePattern(sector5, 5), "the guest's write over virtio-pci reached the backing file");
    }

    /// <summary>Without the flag the same guest finds no PCI segment (devices stay virtio-mmio, as before).</summary>
    [Trait("Needs", "kvm")]
    [SkippableFact]
    public void Without_the_flag_there_is_no_pci_segment()
    {
        KvmRequirement.Check();
        var r = Repo.RunFlint(T, "--no-api", "--config-file", Config("tg.tests=serial,pci,blk"));
        output.WriteLine(r.All);
        Assert.Contains("FAIL pci-enum", r.Stdout);
        Assert.Contains("PASS blk\n", r.Stdout);
    }
}
