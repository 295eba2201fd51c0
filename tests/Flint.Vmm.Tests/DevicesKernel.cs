namespace Flint.Vmm.Tests;

/// <summary>
/// Where the "devices" guest kernel is (guest/build-kernel.sh --variant devices: ACPI, PCI, virtio-pci, pmem/DAX,
/// virtio-mem, VMGenID): FLINT_DEVICES_KERNEL, else artifacts/guest-devices/vmlinux (git-ignored; the nested-KVM L1
/// sees the worktree but not /work/shared-guest-devices), else /work/shared-guest-devices/vmlinux.
/// </summary>
internal static class DevicesKernel
{
    public static string Path
    {
        get
        {
            if (Environment.GetEnvironmentVariable("FLINT_DEVICES_KERNEL") is { Length: > 0 } env) return env;
            string inRepo = System.IO.Path.Combine(Repo.Root, "artifacts", "guest-devices", "vmlinux");
            return File.Exists(inRepo) ? inRepo : "/work/shared-guest-devices/vmlinux";
        }
    }

    /// <summary>Skips the test when the kernel is absent (it is built on demand, not by scripts/setup.sh).</summary>
    public static string Require()
    {
        string p = Path;
        Skip.IfNot(File.Exists(p), $"{p} absent: build it with guest/build-kernel.sh --variant devices DIR and copy DIR/vmlinux to artifacts/guest-devices/");
        return p;
    }
}
