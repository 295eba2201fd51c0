namespace Flint.Vmm.Tests;

/// <summary>
/// flint is a static executable. APIs that load shared libraries at run time cannot work in it: System.Security.Cryptography
/// dlopens OpenSSL, and in the static binary that killed the VMM with SIGFPE the moment MMDS V2 was set up (seen on a KVM
/// host; CoreCLR test runs never show it). Keep such APIs out of the sources.
/// </summary>
public class StaticBinaryRulesTests
{
    [Fact]
    public void Sources_use_no_api_that_loads_openssl()
    {
        var offenders = Directory.EnumerateFiles(Path.Combine(Repo.Root, "src"), "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}"))
            .Where(f => File.ReadLines(f).Any(l => !l.TrimStart().StartsWith("///") && !l.TrimStart().StartsWith("//")
                                                  && l.Contains("System.Security.Cryptography")))
            .ToList();
        Assert.Empty(offenders);
    }
}
