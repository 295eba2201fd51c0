namespace Flint.Devices.Tests;

/// <summary>
/// P/Invoke lives in Flint.Sys (libc) and Flint.Kvm (KVM) only. The files listed here are the known exceptions
/// still to move; a new declaration anywhere else fails this test.
/// </summary>
public sealed class InteropLayerTests
{
    private static readonly string[] KnownExceptions =
    [
        "src/Flint.Devices/Virtio/Vsock/VsockNative.cs", // moves to Flint.Sys.SocketLibc/IoVec/MsgHdr with the vsock split
        "src/Flint.Seccomp/SeccompFilter.cs",            // prctl/seccomp syscall: owned by the seccomp work
    ];

    [Fact]
    public void PInvokeOnlyInSysAndKvm()
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

    private static string RepoRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Flint.sln"))) return d.FullName;
        throw new InvalidOperationException("Flint.sln not found above " + AppContext.BaseDirectory);
    }
}
