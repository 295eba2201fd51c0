namespace Flint.Devices.Tests;

/// <summary>
/// P/Invoke lives in Flint.Sys (libc) and Flint.Kvm (KVM) only, one declaration per native function. The lists here
/// are the known, explained exceptions; a new declaration anywhere else, or a second one of a function, fails.
/// </summary>
public sealed class InteropLayerTests
{
    private static readonly string[] KnownExceptions =
    [
    ];

    /// <summary>Functions declared twice on purpose.</summary>
    private static readonly string[] KnownTwins =
    [
        "libc:syscall", // JailerLibc.RawSyscall has no SetLastError: it runs in a forked child; SeccompLibc's keeps errno
    ];

    [Fact]
    public void PInvoke_only_in_Flint_Sys_and_Flint_Kvm()
    {
        string root = RepoRoot();
        var offenders = Directory.EnumerateFiles(Path.Combine(root, "src"), "*.cs", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(root, f).Replace(Path.DirectorySeparatorChar, '/'))
            .Where(f => !f.Contains("/obj/") && !f.StartsWith("src/Flint.Sys/") && !f.StartsWith("src/Flint.Kvm/"))
            .Where(f => !KnownExceptions.Contains(f))
            .Where(f => File.ReadLines(Path.Combine(root, f)).Any(l => l.Contains("[DllImport") || l.Contains("[LibraryImport")))
            .ToList();
        Assert.Empty(offenders);
    }

    /// <summary>
    /// Each native function is declared once (by its entry point), so its signature, SetLastError and errno handling
    /// are decided in one place: two classes both importing sendmsg or readv is how they drift apart.
    /// </summary>
    [Fact]
    public void Each_native_function_declared_once()
    {
        string root = RepoRoot();
        var import = new System.Text.RegularExpressions.Regex(
            @"\[(?:DllImport|LibraryImport)\(([^\]]*)\)\][^;]*?\bextern\s+[\w*]+\s+(\w+)\s*\(");
        var entry = new System.Text.RegularExpressions.Regex(@"EntryPoint\s*=\s*""(\w+)""");
        var seen = new Dictionary<string, List<string>>();
        foreach (var f in Directory.EnumerateFiles(Path.Combine(root, "src"), "*.cs", SearchOption.AllDirectories))
        {
            string rel = Path.GetRelativePath(root, f).Replace(Path.DirectorySeparatorChar, '/');
            if (rel.Contains("/obj/")) continue;
            foreach (System.Text.RegularExpressions.Match m in import.Matches(File.ReadAllText(f)))
            {
                var ep = entry.Match(m.Groups[1].Value);
                string lib = m.Groups[1].Value.Split(',')[0].Trim().Trim('"');
                if (lib == "L") lib = "libc"; // the Flint.Sys classes name libc through a constant
                string name = lib + ":" + (ep.Success ? ep.Groups[1].Value : m.Groups[2].Value);
                if (!seen.TryGetValue(name, out var where)) seen[name] = where = [];
                where.Add(rel);
            }
        }
        Assert.NotEmpty(seen);
        var twice = seen.Where(kv => kv.Value.Count > 1 && !KnownTwins.Contains(kv.Key)).Select(kv => $"{kv.Key} in {string.Join(", ", kv.Value)}").ToList();
        Assert.Empty(twice);
    }

    private static string RepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Flint.sln"))) return d.FullName;
        throw new InvalidOperationException("Flint.sln not found above " + AppContext.BaseDirectory);
    }
}
