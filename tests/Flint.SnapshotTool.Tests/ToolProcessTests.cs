using System.Diagnostics;
using Flint.Memory;
using Flint.Snapshot;

namespace Flint.SnapshotTool.Tests;

/// <summary>
/// flint-snapshot as a process: the published NativeAOT binary (artifacts/bin/flint-snapshot, from scripts/setup.sh)
/// when it exists, else the build's own apphost. Output, exit codes, and no .NET text on any failure.
/// </summary>
public sealed class ToolProcessTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("flint-tool-").FullName;

    public void Dispose() => Directory.Delete(_dir, true);

    private static string Tool()
    {
        var d = new DirectoryInfo(AppContext.BaseDirectory);
        while (d != null && !File.Exists(Path.Combine(d.FullName, "Flint.sln"))) d = d.Parent;
        string published = Path.Combine(d!.FullName, "artifacts", "bin", "flint-snapshot");
        if (File.Exists(published) && Environment.GetEnvironmentVariable("FLINT_TOOL_FROM_BUILD") == null) return published;
        return Path.Combine(AppContext.BaseDirectory, "flint-snapshot");
    }

    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var psi = new ProcessStartInfo(Tool()) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var so = p.StandardOutput.ReadToEndAsync();
        var se = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(30_000)) { p.Kill(); Assert.Fail("flint-snapshot did not exit in 30 s"); }
        return (p.ExitCode, so.Result, se.Result);
    }

    private static void NoDotNetText(string s)
    {
        Assert.DoesNotContain("Exception", s);
        Assert.DoesNotContain("   at ", s);
        Assert.DoesNotContain("System.", s);
    }

    [Fact]
    public void Info_describes_a_state_file()
    {
        string state = Path.Combine(_dir, "vm.state");
        StateInfoTests.Sample(new MemoryFileInfo(MemoryFileKind.Diff, 4096, DirtySource.Mincore)).Save(state);
        var (code, o, e) = Run("info", state);
        Assert.Equal(0, code);
        Assert.Equal("", e);
        Assert.Contains("vcpus: 2\n", o);
        Assert.Contains("memory file: diff, page size 4096, pages resident at the snapshot (mincore)", o);
        Assert.Equal((0, "v1.0.0\n", ""), Run("info-vmstate", "version", "--vmstate-path", state));
    }

    [Fact]
    public void Firecracker_spelling_merges_a_diff()
    {
        const ulong P = GuestMemory.PageSize;
        using var mem = GuestMemory.Create([(0UL, 16 * P)]);
        mem.EnableDirtyTracking();
        mem.Fill(0, 16 * P, 1);
        string b = Path.Combine(_dir, "base"), d = Path.Combine(_dir, "diff");
        mem.DumpToFile(b);
        mem.ResetDirty();
        mem.Fill(5 * P, P, 9);
        mem.DumpDirtyToFile(d, (_, _, _) => { });
        var (code, o, e) = Run("edit-memory", "rebase", "--memory-path", b, "--diff-path", d);
        Assert.Equal((0, "", ""), (code, o, e));
        var bytes = File.ReadAllBytes(b);
        Assert.Equal(9, bytes[5 * P]);
        Assert.Equal(1, bytes[6 * P]);
        var merge = Run("merge", "--base", b, "--diff", d, "--page-size", "4096");
        Assert.Equal(0, merge.Code);
        Assert.Contains("merged 4096 bytes (1 pages)", merge.Out);
    }

    [Theory]
    [InlineData(1, "Error: Could not open state file", "info", "/nonexistent/vm.state")]
    [InlineData(1, "Error: Could not open memory file: No such file or directory (os error 2)", "edit-memory", "rebase", "--memory-path", "/nonexistent/a", "--diff-path", "/nonexistent/b")]
    [InlineData(2, "Error: the argument '--diff-path' is required.", "edit-memory", "rebase", "--memory-path", "x")]
    [InlineData(2, "Error: unknown command 'frobnicate'.", "frobnicate")]
    [InlineData(2, "Error: invalid value 'big' for --page-size.", "merge", "--base", "a", "--diff", "b", "--page-size", "big")]
    [InlineData(2, "Error: no command given.")]
    public void Failures_are_one_clear_line_and_an_exit_code(int code, string start, params string[] args)
    {
        var r = Run(args);
        Assert.Equal(code, r.Code);
        Assert.StartsWith(start, r.Err);
        Assert.Equal("", r.Out);
        NoDotNetText(r.Err);
    }

    [Fact]
    public void A_corrupt_state_file_is_refused_with_the_format_reason()
    {
        string state = Path.Combine(_dir, "bad.state");
        var bytes = StateInfoTests.Sample(null).Serialize();
        bytes[30] ^= 0xff;
        File.WriteAllBytes(state, bytes);
        var r = Run("info", state);
        Assert.Equal(1, r.Code);
        Assert.Equal($"Error: Invalid state file {state}: CRC64 validation failed\n", r.Err);
    }
}
