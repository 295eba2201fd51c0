using System.Diagnostics;

namespace Flint.Vmm.Tests;

/// <summary>
/// scripts/release.sh builds the tarball a user installs without .NET: the test builds it from artifacts/bin, checks
/// its contents and checksums, and installs it into a temporary prefix with its own install.sh.
/// </summary>
public sealed class ReleaseScriptTests : IDisposable
{
    private readonly string _dir = Repo.TempDir();

    public void Dispose() => Directory.Delete(_dir, true);

    private static (int Code, string Out) Run(string file, string dir, IDictionary<string, string>? env, params string[] args)
    {
        var psi = new ProcessStartInfo(file, args) { WorkingDirectory = dir, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var (k, v) in env ?? new Dictionary<string, string>()) psi.Environment[k] = v;
        using var p = Process.Start(psi)!;
        var err = p.StandardError.ReadToEndAsync();
        string o = p.StandardOutput.ReadToEnd();
        Assert.True(p.WaitForExit(300_000), "timed out");
        return (p.ExitCode, o + err.Result);
    }

    [Fact]
    public void Release_tarball_holds_the_binaries_docs_and_checksums_and_installs()
    {
        Assert.True(File.Exists(Repo.Flint), $"{Repo.Flint} is missing: run scripts/setup.sh");
        var (code, o) = Run("bash", Repo.Root, null, "scripts/release.sh", "--skip-setup", _dir);
        Assert.True(code == 0, o);
        var tgz = Directory.GetFiles(_dir, "flint-v*-x86_64.tgz").Single();
        string name = Path.GetFileName(tgz)[..^".tgz".Length];
        Assert.Equal(0, Run("tar", _dir, null, "-xzf", tgz).Code);
        string d = Path.Combine(_dir, name);
        foreach (var f in new[] { "bin/flint", "bin/flint-jailer", "bin/flint-snapshot", "bin/flint-uffd-handler", "bin/flint-pool", "install.sh", "VERSION", "README.md", "SHA256SUMS",
                     "share/seccomp/default-filters.json", "docs/troubleshooting.md", "docs/api-and-config.md" })
            Assert.True(File.Exists(Path.Combine(d, f)), $"{f} missing from the tarball");
        Assert.Equal(File.Exists(Path.Combine(Repo.Root, "LICENSE")), File.Exists(Path.Combine(d, "LICENSE")));
        if (!File.Exists(Path.Combine(Repo.Root, "LICENSE"))) Assert.Contains("WARNING: the repository has no LICENSE", o);

        // Every file is listed in SHA256SUMS, and every sum checks.
        var listed = File.ReadAllLines(Path.Combine(d, "SHA256SUMS")).Select(l => l[66..]).Order().ToArray();
        var files = Directory.GetFiles(d, "*", SearchOption.AllDirectories).Select(f => Path.GetRelativePath(d, f))
            .Where(f => f != "SHA256SUMS").Order().ToArray();
        Assert.Equal(files, listed);
        Assert.Equal(0, Run("sha256sum", d, null, "--quiet", "-c", "SHA256SUMS").Code);

        // VERSION names Flint's version and the Firecracker API version the binary reports.
        string version = File.ReadAllText(Path.Combine(d, "VERSION"));
        var fc = Run(Path.Combine(d, "bin", "flint"), d, null, "--version").Out.Split('\n')[0].Trim();
        Assert.StartsWith("Firecracker v", fc);
        Assert.Contains($"implements the Firecracker API {fc["Firecracker v".Length..]}", version);
        Assert.StartsWith($"flint {name["flint-v".Length..^"-x86_64".Length]}\n", version);

        // install.sh puts the binaries in PREFIX/bin (default /usr/local; a temporary prefix here).
        string prefix = Path.Combine(_dir, "prefix");
        var (ic, io) = Run("sh", d, new Dictionary<string, string> { ["PREFIX"] = prefix }, "./install.sh");
        Assert.True(ic == 0, io);
        Assert.True(File.Exists(Path.Combine(prefix, "bin", "flint")));
        foreach (var b in new[] { "flint-jailer", "flint-snapshot", "flint-uffd-handler", "flint-pool" })
            Assert.True(File.Exists(Path.Combine(prefix, "bin", b)), $"{b} not installed");
        Assert.True(File.Exists(Path.Combine(prefix, "share", "flint", "docs", "troubleshooting.md")));
        Assert.Contains("Firecracker v", io);
        Assert.Contains("/bin/flint", File.ReadAllText(Path.Combine(d, "install.sh")).Replace("$PREFIX", ""));
        Assert.Contains("PREFIX:-/usr/local", File.ReadAllText(Path.Combine(d, "install.sh")));
    }
}
