using Flint.TestGuest;
using Xunit.Abstractions;

namespace Flint.Vmm.Tests;

/// <summary>
/// Tier 2: the freestanding test guest (tests/testguest) boots under the real flint binary on KVM and drives
/// serial, virtio-blk (by hand-driven virtqueue), the boot timer and the i8042 reset from inside the VM.
/// </summary>
public class TestGuestTests(ITestOutputHelper output) : IDisposable
{
    private static readonly TimeSpan T = TimeSpan.FromSeconds(120);
    private readonly string _dir = Repo.TempDir();

    public void Dispose() => Directory.Delete(_dir, true);

    private string Config(string bootArgs, bool readOnly = false, int vcpus = 1, int memMib = 64, bool withDisk = true, string extra = "",
        string ioEngine = "Sync")
    {
        var disk = Path.Combine(_dir, "disk.img");
        TestGuestImage.WriteDisk(disk, 64);
        var drives = withDisk
            ? $"[{{\"drive_id\": \"data\", \"path_on_host\": \"{disk}\", \"is_root_device\": false, \"is_read_only\": {(readOnly ? "true" : "false")}, \"cache_type\": \"Writeback\", \"io_engine\": \"{ioEngine}\"}}]"
            : "[]";
        var p = Path.Combine(_dir, "config.json");
        File.WriteAllText(p, $$"""
            {"boot-source": {"kernel_image_path": "{{TestGuestImage.Path}}", "boot_args": "{{bootArgs}}" },
             "drives": {{drives}},
             "machine-config": {"vcpu_count": {{vcpus}}, "mem_size_mib": {{memMib}} }{{extra}} }
            """);
        return p;
    }

    private Repo.Result Boot(string config)
    {
        var r = Repo.RunFlint(T, "--no-api", "--boot-timer", "--config-file", config);
        output.WriteLine(r.All);
        return r;
    }

    [Trait("Needs", "kvm")]  // selected by the nested-KVM run (scripts/test.sh)
    [SkippableFact]
    public void Boots_and_drives_virtio_blk_read_write_flush()
    {
        KvmRequirement.Check();
        var r = Boot(Config("tg.tests=serial,blk"));
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("FLINT-TESTGUEST start", r.Stdout);
        Assert.Contains("PASS blk", r.Stdout);
        Assert.Contains("PASS blk-flush", r.Stdout);      // cache_type Writeback offers FLUSH
        Assert.Matches(@"FLINT-TESTGUEST done pass=\d+ fail=0", r.Stdout);
        Assert.Contains("Guest-boot-time =", r.Stdout);
        var sector3 = new byte[512];
        using (var f = File.OpenRead(Path.Combine(_dir, "disk.img"))) { f.Seek(3 * 512, SeekOrigin.Begin); f.ReadExactly(sector3); }
        Assert.True(TestGuestImage.SectorMatchesWritePattern(sector3, 3), "the guest's write reached the backing file");
    }

    /// <summary>The same guest-driven reads, writes and flush through io_engine Async (io_uring, completions on the event loop).</summary>
    [Trait("Needs", "kvm")]  // selected by the nested-KVM run (scripts/test.sh)
    [SkippableFact]
    public void Drives_virtio_blk_through_the_async_io_uring_engine()
    {
        KvmRequirement.Check();
        var r = Boot(Config("tg.tests=serial,blk", ioEngine: "Async"));
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("PASS blk", r.Stdout);
        Assert.Contains("PASS blk-flush", r.Stdout);
        Assert.Matches(@"FLINT-TESTGUEST done pass=\d+ fail=0", r.Stdout);
        var sector3 = new byte[512];
        using (var f = File.OpenRead(Path.Combine(_dir, "disk.img"))) { f.Seek(3 * 512, SeekOrigin.Begin); f.ReadExactly(sector3); }
        Assert.True(TestGuestImage.SectorMatchesWritePattern(sector3, 3), "the guest's write reached the backing file");
    }

    [Trait("Needs", "kvm")]  // selected by the nested-KVM run (scripts/test.sh)
    [SkippableFact]
    public void Boot_timer_written_first_measures_instance_start_to_the_first_guest_instructions()
    {
        KvmRequirement.Check();
        var r = Boot(Config("tg.tests=serial tg.boottimer=first", withDisk: false));
        Assert.Equal(0, r.ExitCode);
        var m = System.Text.RegularExpressions.Regex.Match(r.Stdout, @"Guest-boot-time = +(\d+) us");
        Assert.True(m.Success, "no boot-timer line");
        // The line comes before the guest's first serial output.
        Assert.True(r.Stdout.IndexOf("Guest-boot-time", StringComparison.Ordinal) < r.Stdout.IndexOf("FLINT-TESTGUEST start", StringComparison.Ordinal));
        output.WriteLine($"InstanceStart -> first guest instructions: {long.Parse(m.Groups[1].Value) / 1000.0:F2} ms");
    }

    [Trait("Needs", "kvm")]  // selected by the nested-KVM run (scripts/test.sh)
    [SkippableFact]
    public void Custom_cpu_template_is_applied_and_its_kvm_capability_checks_hold()
    {
        KvmRequirement.Check();
        static string Template(string cap) =>
            ", \"cpu-config\": {\"kvm_capabilities\": [\"" + cap + "\"], \"cpuid_modifiers\": [{\"leaf\": \"0x1\", \"subleaf\": \"0x0\", " +
            "\"flags\": 0, \"modifiers\": [{\"register\": \"ecx\", \"bitmap\": \"0b1xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}]}], " +
            "\"msr_modifiers\": [{\"addr\": \"0x1a0\", \"bitmap\": \"0b1\"}]}";
        var r = Boot(Config("tg.tests=serial", withDisk: false, extra: Template("1")));   // KVM_CAP_IRQCHIP: always there
        Assert.Equal(0, r.ExitCode);
        Assert.Matches("fail=0", r.Stdout);
        r = Boot(Config("tg.tests=serial", withDisk: false, extra: Template("100000")));
        Assert.Equal(1, r.ExitCode); // a config file that fails to build: Firecracker's main.rs exits 1 (GenericError)
        Assert.Contains("lacks capability 100000", r.All);
    }

    [Trait("Needs", "kvm")]  // selected by the nested-KVM run (scripts/test.sh)
    [SkippableFact]
    public void Guest_runs_on_2M_huge_pages()
    {
        KvmRequirement.Check();
        const string nr = "/proc/sys/vm/nr_hugepages";
        string before = File.ReadAllText(nr).Trim();
        File.WriteAllText(nr, (long.Parse(before) + 40).ToString());   // 64 MiB of guest RAM = 32 huge pages
        try
        {
            var cfg = Config("tg.tests=serial,blk");
            File.WriteAllText(cfg, File.ReadAllText(cfg).Replace("\"mem_size_mib\": 64", "\"mem_size_mib\": 64, \"huge_pages\": \"2M\""));
            Assert.Contains("huge_pages", File.ReadAllText(cfg));
            var r = Boot(cfg);
            Assert.Equal(0, r.ExitCode);
            Assert.Matches("fail=0", r.Stdout);
        }
        finally { File.WriteAllText(nr, before); }
    }

    [Trait("Needs", "kvm")]  // selected by the nested-KVM run (scripts/test.sh)
    [SkippableFact]
    public void Read_only_drive_refuses_guest_writes()
    {
        KvmRequirement.Check();
        var r = Boot(Config("tg.tests=blk", readOnly: true));
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("PASS blk-ro", r.Stdout);
        Assert.Matches(@"fail=0", r.Stdout);
    }

    [Trait("Needs", "kvm")]  // selected by the nested-KVM run (scripts/test.sh)
    [SkippableFact]
    public void Smp_guest_boots_with_four_vcpus_and_large_memory()
    {
        KvmRequirement.Check();
        // 3.5 GiB crosses the 32-bit MMIO gap: RAM is split around 3-4 GiB.
        var r = Boot(Config("tg.tests=serial,blk", vcpus: 4, memMib: 3584));
        Assert.Equal(0, r.ExitCode);
        Assert.Matches(@"fail=0", r.Stdout);
    }

    [Trait("Needs", "kvm")]  // selected by the nested-KVM run (scripts/test.sh)
    [SkippableFact]
    public void Pio_exit_rate_through_the_full_device_path()
    {
        KvmRequirement.Check();
        const int n = 200_000;
        var sw = System.Diagnostics.Stopwatch.StartNew();
        var r = Boot(Config($"tg.tests=pio tg.pio={n}", withDisk: false));
        Assert.Equal(0, r.ExitCode);
        Assert.Contains($"pio done {n}", r.Stdout);
        output.WriteLine($"PIO exits: {n} in {sw.Elapsed.TotalMilliseconds:F0} ms (whole run) => >= {n / sw.Elapsed.TotalSeconds:F0} exits/s");
    }
}
