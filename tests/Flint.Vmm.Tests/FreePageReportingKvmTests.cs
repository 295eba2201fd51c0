using Flint.TestGuest;
using Xunit.Abstractions;

namespace Flint.Vmm.Tests;

/// <summary>
/// On KVM: the test guest reports free pages to a balloon with free_page_reporting (tests/testguest/balloon.c,
/// "PASS balloon-report": the reported range reads back as zeros, so the host dropped it), and a guest's serial
/// output goes to PUT /serial's serial_out_path instead of stdout.
/// </summary>
public sealed class FreePageReportingKvmTests(ITestOutputHelper output) : IDisposable
{
    private static readonly TimeSpan T = TimeSpan.FromSeconds(120);
    private readonly string _dir = Repo.TempDir();

    public void Dispose() => Directory.Delete(_dir, true);

    [Trait("Needs", "kvm")]
    [SkippableFact]
    public void Guest_reported_free_pages_are_dropped_by_the_host()
    {
        KvmRequirement.Check();
        var cmd = TestGuestImage.Build().Balloon(waitMs: 2000).BootTimer(false).ToString();
        var config = Path.Combine(_dir, "config.json");
        File.WriteAllText(config, $$"""
            {"boot-source": {"kernel_image_path": "{{TestGuestImage.Path}}", "boot_args": "{{cmd}}" },
             "drives": [],
             "machine-config": {"vcpu_count": 1, "mem_size_mib": 128 },
             "balloon": {"amount_mib": 8, "deflate_on_oom": false, "free_page_reporting": true} }
            """);
        var r = Repo.RunFlint(T, "--no-api", "--config-file", config);
        output.WriteLine(r.All);
        Assert.Equal(0, r.ExitCode);
        foreach (var l in TestGuestImage.BalloonPassLines(stats: false)) Assert.Contains(l, r.Stdout);
        Assert.Contains("PASS balloon-report", r.Stdout);
        Assert.Matches("fail=0", r.Stdout);
    }

    [Trait("Needs", "kvm")]
    [SkippableFact]
    public void Serial_output_goes_to_serial_out_path()
    {
        KvmRequirement.Check();
        string serial = Path.Combine(_dir, "serial.out");
        var cmd = TestGuestImage.Build().BootTimer(false).ToString();
        using var flint = new FlintApiProcess(_dir);
        var p = flint.Process;
        using (var s = flint.Connect())
        {
            Assert.Equal(204, ApiHttp.Request(s, "PUT", "/boot-source",
                $"{{\"kernel_image_path\": \"{TestGuestImage.Path}\", \"boot_args\": \"{cmd}\"}}").Status);
            Assert.Equal(204, ApiHttp.Request(s, "PUT", "/serial", $"{{\"serial_out_path\": \"{serial}\"}}").Status);
            Assert.Equal(204, ApiHttp.Request(s, "PUT", "/actions", "{\"action_type\": \"InstanceStart\"}").Status);
            // (PUT /serial after the start is refused: ParityBehaviourTests; the guest may be gone by now.)
            Assert.True(p.WaitForExit((int)T.TotalMilliseconds), "the guest did not finish");
        }
        string console = File.ReadAllText(serial);
        output.WriteLine(console);
        Assert.Contains(TestGuestImage.StartLine, console);
        Assert.Contains(TestGuestImage.DonePrefix, console);
        Assert.DoesNotContain(TestGuestImage.StartLine, flint.Output);
    }
}
