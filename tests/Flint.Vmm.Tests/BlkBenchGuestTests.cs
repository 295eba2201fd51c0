using System.Text.RegularExpressions;
using Flint.TestGuest;
using Xunit.Abstractions;

namespace Flint.Vmm.Tests;

/// <summary>
/// The test guest's block throughput mode (tests/testguest/blkbench.c, tg.blk.bench=) under the real flint on KVM,
/// on both io engines: every mode completes all its requests with status OK, and the guest reports its own timing.
/// bench/run measures with it; this checks that what it measures is a run that finished.
/// </summary>
public class BlkBenchGuestTests(ITestOutputHelper output) : IDisposable
{
    private static readonly TimeSpan T = TimeSpan.FromSeconds(120);
    private readonly string _dir = Repo.TempDir();

    public void Dispose() => Directory.Delete(_dir, true);

    [Trait("Needs", "kvm")]  // selected by the nested-KVM run (scripts/test.sh)
    [SkippableTheory]
    [InlineData("Sync", "seq-read,256,65536,4")]
    [InlineData("Sync", "rand-write,256")]
    [InlineData("Async", "rand-read,256,4096,8")]
    [InlineData("Async", "seq-write,128,65536,8")]
    public void Blkbench_completes_every_request_on_both_engines(string ioEngine, string spec)
    {
        KvmRequirement.Check();
        var disk = Path.Combine(_dir, "disk.img");
        TestGuestImage.WriteDisk(disk, 8192);  // 4 MiB
        var config = Path.Combine(_dir, "config.json");
        File.WriteAllText(config, $$"""
            {"boot-source": {"kernel_image_path": "{{TestGuestImage.Path}}", "boot_args": "tg.tests=blkbench tg.blk.bench={{spec}}" },
             "drives": [{"drive_id": "data", "path_on_host": "{{disk}}", "is_root_device": false, "is_read_only": false, "io_engine": "{{ioEngine}}"}],
             "machine-config": {"vcpu_count": 1, "mem_size_mib": 64 } }
            """);
        var r = Repo.RunFlint(T, "--no-api", "--config-file", config);
        output.WriteLine(r.All);
        Assert.Equal(0, r.ExitCode);
        int ops = int.Parse(spec.Split(',')[1]);
        Assert.Contains("blkbench start", r.Stdout);
        Assert.Matches(new Regex($@"(?m)^blkbench done ops={ops} bytes=\d+ cycles=\d+ tsc_khz=\d+ us=\d+\r?$"), r.Stdout);
        Assert.Contains("PASS blkbench", r.Stdout);
        Assert.Contains(TestGuestImage.DoneLine(1, 0), r.Stdout);
    }
}
