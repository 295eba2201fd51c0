namespace Flint.Arch.X86.Tests;

/// <summary>Loads the project's prebuilt test kernel when it is present (a real vmlinux with a PVH note).</summary>
public class GuestKernelTests
{
    /// <summary>artifacts/guest/vmlinux (scripts/setup.sh), else the shared prebuilt copy beside the repo.</summary>
    private static string? FindVmlinux()
    {
        var d = new DirectoryInfo(AppContext.BaseDirectory);
        while (d != null && !File.Exists(Path.Combine(d.FullName, "Flint.sln"))) d = d.Parent;
        if (d == null) return null;
        foreach (var p in new[] { Path.Combine(d.FullName, "artifacts", "guest", "vmlinux"), Path.Combine(d.FullName, "..", "shared", "guest", "vmlinux") })
            if (File.Exists(p)) return p;
        return null;
    }

    [SkippableFact]
    public void Test_guest_vmlinux_loads_as_pvh()
    {
        var vmlinux = FindVmlinux();
        Skip.If(vmlinux == null, "test guest vmlinux not present");
        using var mem = Mem.Create(64 * Mem.MiB);
        var k = KernelLoader.Load(mem, vmlinux!);
        Assert.Equal(KernelKind.Pvh, k.Kind);
        Assert.Equal(0x100_0000UL, k.LoadAddress);
        Assert.True(k.Entry > k.LoadAddress && k.Entry < k.End);
        Assert.NotEqual(0u, Mem.U32(mem, k.Entry)); // code is there
    }
}
