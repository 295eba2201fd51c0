using System.Diagnostics;

namespace Flint.Vmm.Tests;

/// <summary>
/// README command 1 (scripts/run-default-vm.sh) ends by saying how far the boot got: on a kvm_pvm host a boot that
/// reaches "Run /sbin/init" and then panics is the expected end, and the summary has to say so in plain words.
/// </summary>
public sealed class RunDefaultVmScriptTests : IDisposable
{
    private readonly string _dir = Repo.TempDir();

    public void Dispose() => Directory.Delete(_dir, true);

    private (string Out, string Log) Monitor(string kind, string console)
    {
        var log = Path.Combine(_dir, "console.log");
        var psi = new ProcessStartInfo("python3", [Path.Combine(Repo.Root, "scripts", "boot-monitor.py"), kind, log])
        { RedirectStandardInput = true, RedirectStandardOutput = true };
        using var p = Process.Start(psi)!;
        p.StandardInput.Write(console);
        p.StandardInput.Close();
        string o = p.StandardOutput.ReadToEnd();
        Assert.True(p.WaitForExit(10_000));
        return (o, File.ReadAllText(log));
    }

    private const string PvmBoot = "[    0.000000] Linux version 6.1.0\n[   23.475456] VFS: Mounted root (ext4 filesystem) on device 254:0.\n"
        + "[   30.545903] Run /sbin/init as init process\n[   30.61] init[1]: segfault at 0 ip 0 sp 0 error 4\n"
        + "[   30.70] Kernel panic - not syncing: Attempted to kill init! exitcode=0x0000000b\n";

    [Fact]
    public void On_kvm_pvm_reaching_init_then_panicking_is_reported_as_the_expected_end()
    {
        var (o, log) = Monitor("kvm_pvm", PvmBoot + "/ # ");
        Assert.StartsWith(PvmBoot + "/ # ", o);       // the console passes through unchanged, a prompt without newline too
        Assert.Equal(PvmBoot + "/ # ", log);
        Assert.Contains("Reached: the kernel finished booting and started /sbin/init", o);
        Assert.Contains("That is the expected end on this host", o);
        Assert.Contains("guest user space cannot run", o);
        Assert.Contains("On a host with VMX or SVM", o);
    }

    [Fact]
    public void On_hardware_kvm_the_boot_timer_figure_is_reported()
    {
        var (o, _) = Monitor("hardware", "Linux version 6.1\nVFS: Mounted root\nRun /sbin/init as init process\nFLINT_GUEST_INIT_OK uptime=0.10\n"
            + "2026-12-06T17:00:00.000000000 [anonymous-instance:fc_vcpu 0:INFO] Guest-boot-time =  98123 us 98 ms,  97000 CPU us 97 CPU ms\n");
        Assert.Contains("Reached: the rootfs init ran in guest user space", o);
        Assert.Contains("Boot timer: 98.1 ms", o);
        Assert.DoesNotContain("expected end", o);
    }

    [Fact]
    public void A_boot_that_stops_early_says_so()
    {
        var (o, _) = Monitor("hardware", "Linux version 6.1\nKVM internal error on vCPU 0. Suberror: 1\n");
        Assert.Contains("Reached: the guest kernel started", o);
        Assert.Contains("internal error", o);
        Assert.Contains("did not reach init", o);
    }

    [Fact]
    public void Without_kvm_the_summary_says_no_vm_could_run()
    {
        var (o, _) = Monitor("none", "2026-12-06T18:27:21.383281600 [anonymous-instance:main:ERROR] Building VMM configured from cmdline json failed: open /dev/kvm failed\n");
        Assert.Contains("Reached: nothing from the guest kernel", o);
        Assert.Contains("no /dev/kvm", o);
        Assert.DoesNotContain("On a host with VMX or SVM", o);
    }

    [Fact]
    public void The_default_vm_gets_no_option_its_kernel_does_not_know()
    {
        // Our guest kernel has no PCI (CONFIG_PCI unset), so pci=off was only printed back as an unknown parameter.
        Assert.Contains("# CONFIG_PCI is not set", File.ReadAllText(Path.Combine(Repo.Root, "guest", "kernel", "config")));
        Assert.DoesNotContain("pci=off", File.ReadAllText(Path.Combine(Repo.Root, "scripts", "run-default-vm.sh")));
    }
}
