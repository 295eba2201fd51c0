using System.Text.RegularExpressions;
using Flint.Bench.Harness;

namespace Flint.Bench.Tests;

/// <summary>The report labels rows with the host they came from and the accelerator each VMM used; its charts stay readable.</summary>
public class ReportTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("flint-bench-tests-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    private static Series S(string section, string metric, string subject, string unit, params double[] xs) =>
        new() { Section = section, Metric = metric, Subject = subject, Unit = unit, Samples = xs.ToList() };

    private string Write(HarnessResults h, string prefix = "")
    {
        string json = Path.Combine(_dir, "h.json");
        File.WriteAllText(json, System.Text.Json.JsonSerializer.Serialize(h));
        Report.Write(json, Path.Combine(_dir, "none.json"), _dir, prefix);
        return File.ReadAllText(Path.Combine(_dir, prefix + "results.md"));
    }

    private static HarnessResults Host(string kvm, string kind, string accel) => new()
    {
        Host = new() { ["CPU"] = "test (1 logical CPUs visible)", ["/dev/kvm"] = kvm, ["host kind"] = kind, ["QEMU accelerator"] = accel },
    };

    [Fact]
    public void A_nested_run_says_nested_in_its_title_and_guest_sections_and_names_the_steps_it_did_not_finish()
    {
        var h = Host("present", "nested KVM (kvm_amd) inside tests/nested-kvm's L1", "kvm (the same KVM as Flint's guests)");
        h.Steps = "bootmemory,block,boot";
        h.Series.Add(S("bootmemory", "VMM overhead after boot: x", "Flint", "MiB", 6.0));
        h.Series.Add(S("bootmemory", "VMM overhead after boot: x", "QEMU", "MiB", 46.0));
        h.Series.Add(S("block", "seq-read 64 KiB, queue depth 4: Flint io_engine Sync / QEMU aio=threads", "Flint", "MiB/s", 7.0));
        h.Series.Add(S("block", "seq-read 64 KiB, queue depth 4: Flint io_engine Sync / QEMU aio=threads", "QEMU", "MiB/s", 3.5));
        string md = Write(h, "nested-");
        Assert.StartsWith("# Flint vs QEMU `-M microvm` on nested KVM", md);
        Assert.Contains("## 2b. VMM memory after boot (guest memory excluded) (nested KVM: ratios only)", md);
        Assert.Contains("## 4c. Block throughput and IOPS (nested KVM: ratios only)", md);
        Assert.Contains("**Not measured: boot.**", md);
        Assert.Contains("| 2.00 |", md);                                        // 7 / 3.5, higher is better
        Assert.Contains("6.000 MiB (over)", md);                                // the promise row uses the after-boot figure
        Assert.True(File.Exists(Path.Combine(_dir, "nested-block.svg")));
        Assert.False(File.Exists(Path.Combine(_dir, "nested-boot.svg")));       // no rows, no chart
        Assert.DoesNotContain("(TCG", md);
    }

    [Fact]
    public void Without_kvm_the_headings_say_so_and_qemu_rows_are_labelled_tcg()
    {
        var h = Host("absent", "no /dev/kvm: Flint cannot run a guest here", "tcg (no usable /dev/kvm)");
        h.Series.Add(new Series { Section = "block", Metric = "rand-read 4 KiB, queue depth 1: x", Subject = "Flint", Unit = "IOPS", NotMeasured = "not measurable here: no /dev/kvm" });
        var q = S("block", "rand-read 4 KiB, queue depth 1: x", "QEMU", "IOPS", 900);
        q.Label = "TCG: reference only, not comparable to KVM";
        h.Series.Add(q);
        string md = Write(h);
        Assert.StartsWith("# Flint vs QEMU `-M microvm` on a host without KVM", md);
        Assert.Contains("## What depends on this host (no KVM here, QEMU on TCG)", md);
        Assert.Contains("## 4c. Block throughput and IOPS (no KVM here)", md);
        Assert.Contains("900.0 / **900.0** / 900.0 (TCG: reference only, not comparable to KVM)", md);
    }

    [Fact]
    public void The_latency_chart_keeps_a_median_visible_beside_a_p99_a_thousand_times_larger()
    {
        // A linear axis set by the p99 bar drew the 10 us median 0.4 px wide.
        string svg = Svg.Bars("t", "us", [new("g", [new("Flint", 10, 5, 20, null, null), new("QEMU", 10_000, 9_000, 11_000, null, null)])], log: true);
        var widths = Regex.Matches(svg, "<rect x=\"\\d+\" y=\"\\d+\" width=\"([0-9.]+)\"").Select(m => double.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture)).ToList();
        Assert.Equal(2, widths.Count);
        Assert.True(widths[0] >= 100, $"median bar {widths[0]} px");
        Assert.True(widths[1] > widths[0] && widths[1] <= 500, $"p99 bar {widths[1]} px");
        Assert.Contains("us (log scale)", svg);
    }

    [Fact]
    public void Micro_chart_labels_fit_their_column()
    {
        const string name = "DeviceBenchmarks.VirtioBlkAsyncRead4Kx5";
        string svg = Svg.Bars("t", "ns/op", [new(name, [new("Flint", 100, 90, 110, null, null)])]);
        var label = Regex.Match(svg, $"<text x=\"(\\d+)\"[^>]*text-anchor=\"end\"[^>]*>{Regex.Escape(name)}</text>");
        Assert.True(label.Success);
        // Right-aligned at x: about 7 px a character must fit left of it.
        Assert.True(int.Parse(label.Groups[1].Value) >= 7 * name.Length, "the label would be cut at the left edge");
    }
}
