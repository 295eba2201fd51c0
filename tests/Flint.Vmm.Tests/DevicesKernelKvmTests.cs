using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Xunit.Abstractions;

namespace Flint.Vmm.Tests;

/// <summary>
/// The new devices seen by a real Linux kernel (the "devices" variant, <see cref="DevicesKernel"/>) on the real flint:
/// the kernel's own boot lines and what its user space reads (/proc, /sys) are the proof, not the test guest's. One
/// boot per transport, each device asserted on its own (every miss is listed, not just the first), since a real
/// kernel boot costs minutes on the nested tier.
/// </summary>
public sealed partial class DevicesKernelKvmTests(ITestOutputHelper output) : IDisposable
{
    private static readonly TimeSpan Boot = TimeSpan.FromSeconds(360);
    private static readonly TimeSpan Answer = TimeSpan.FromSeconds(90);
    private const string PmemMark = "FLINTPMEM";

    private readonly string _dir = Repo.TempDir();
    private readonly List<FlintConsoleProcess> _procs = [];
    private readonly List<string> _misses = [];

    public void Dispose()
    {
        _done = true;
        foreach (var p in _procs)
        {
            p.Dispose();
            output.WriteLine($"--- flint log ---\n{p.Log}");
        }
        Directory.Delete(_dir, true);
    }

    /// <summary>
    /// `--enable-pci` with ACPI: the rootfs drive, a pmem device and virtio-mem are virtio-pci functions with MSI-X.
    /// The kernel lists Flint's tables (MCFG among them), scans the host bridge, finds each function by its virtio id,
    /// mounts the root disk over PCI, binds vmgenid; then from the guest's shell: MSI-X interrupts, /dev/pmem0 reading
    /// the host file's bytes and a guest write reaching the file after fsync (a flush request), and a
    /// PATCH /hotplug/memory of 256 MiB plugged by the driver and onlined (MemTotal grows), then unplugged again.
    /// </summary>
    [Trait("Needs", "kvm")]
    [SkippableFact]
    public void Devices_kernel_over_pci_sees_acpi_root_disk_pmem_and_plugs_virtio_mem()
    {
        KvmRequirement.Check();
        string vmlinux = DevicesKernel.Require();
        string rootfs = CopyRootfs();
        string pmemFile = PmemFile(16 << 20);

        var vm = Start("pci", "--enable-pci");
        vm.Ok("PUT", "/boot-source", $"{{\"kernel_image_path\": \"{vmlinux}\", \"boot_args\": \"console=ttyS0 reboot=k panic=1 flint_shell memhp_default_state=online_movable\"}}");
        vm.Ok("PUT", "/drives/rootfs", $"{{\"drive_id\": \"rootfs\", \"path_on_host\": \"{rootfs}\", \"is_root_device\": true, \"is_read_only\": false}}");
        vm.Ok("PUT", "/pmem/pm0", $"{{\"id\": \"pm0\", \"path_on_host\": \"{pmemFile}\", \"root_device\": false, \"read_only\": false}}");
        vm.Ok("PUT", "/hotplug/memory", "{\"total_size_mib\": 1024}");
        vm.Ok("PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 256}"); // 1 vCPU: the nested L1 has one CPU
        vm.Ok("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
        bool init = WaitForInit(vm);
        string boot = vm.Console;
        output.WriteLine("--- the kernel's device lines ---\n" + DeviceLines(boot));
        Assert.True(init, "the devices kernel did not reach init over PCI:\n" + boot);

        Expect(boot, "ACPI", "ACPI: RSDP 0x00000000000E0000", "ACPI: XSDT 0x", "ACPI: FACP 0x", "ACPI: DSDT 0x", "ACPI: APIC 0x", "ACPI: MCFG 0x");
        Expect(boot, "PCI", "PCI host bridge to bus 0000:00", "pci 0000:00:00.0: [8086:0d57]");
        ExpectMatch(boot, "virtio-blk on PCI", @"pci 0000:00:0\d\.0: \[1af4:1042\]");
        ExpectMatch(boot, "virtio-pmem on PCI", @"pci 0000:00:0\d\.0: \[1af4:105b\]");
        ExpectMatch(boot, "virtio-mem on PCI", @"pci 0000:00:0\d\.0: \[1af4:1058\]");
        Expect(boot, "root disk over PCI", "[vda]", "VFS: Mounted root");
        ExpectMatch(boot, "virtio-mem driver", @"virtio_mem virtio\d+: start address: 0x8000000000");
        ExpectAbsent(boot, "ACPI Error", "Call Trace", "BUG:");

        WaitForShell(vm);
        Shell(vm, "mount -t sysfs sysfs /sys");

        string bound = Shell(vm, "ls /sys/bus/pci/drivers/virtio-pci/");
        ExpectMatch(bound, "virtio-pci driver bound to the three functions", @"0000:00:0\d\.0(.|\n)*0000:00:0\d\.0(.|\n)*0000:00:0\d\.0");
        Expect(Shell(vm, "grep -i msi /proc/interrupts"), "MSI-X interrupts", "PCI-MSI");
        Expect(Shell(vm, "ls /sys/bus/acpi/drivers/vmgenid/"), "vmgenid driver bound", "VMGENCTR:00");

        Expect(Shell(vm, "head -c 9 /dev/pmem0; echo"), "pmem0 reads the host file", PmemMark);
        Shell(vm, "echo GUEST$((6*7)) | dd of=/dev/pmem0 bs=512 seek=8 conv=fsync");
        string written = ReadAt(pmemFile, 4096, 7);
        if (written != "GUEST42") _misses.Add($"pmem write: the host file holds '{written}' at 4096, not GUEST42");
        string iomem = Shell(vm, "cat /proc/iomem");

        long before = MemTotalKib(Shell(vm, "grep MemTotal /proc/meminfo"));
        vm.Ok("PATCH", "/hotplug/memory", "{\"requested_size_mib\": 256}");
        bool plugged = SpinWait.SpinUntil(() => PluggedMib(vm) == 256, Answer);
        long after = MemTotalKib(Shell(vm, "grep MemTotal /proc/meminfo"));
        string blocks = Shell(vm, "grep -l online /sys/devices/system/memory/memory*/state | wc -l; cat /proc/iomem | grep -i virtio");
        output.WriteLine($"virtio-mem: MemTotal {before} kB before the plug, {after} kB after; plugged {PluggedMib(vm)} MiB; online blocks and iomem:\n{blocks}");
        if (!plugged) _misses.Add($"virtio-mem: plugged_size_mib did not reach 256 (now {PluggedMib(vm)})");
        if (after - before < 240 << 10) _misses.Add($"virtio-mem: MemTotal grew by {after - before} kB after plugging 256 MiB");
        vm.Ok("PATCH", "/hotplug/memory", "{\"requested_size_mib\": 0}");
        bool unplugged = SpinWait.SpinUntil(() => PluggedMib(vm) == 0, Answer);
        long back = MemTotalKib(Shell(vm, "grep MemTotal /proc/meminfo"));
        output.WriteLine($"virtio-mem: after PATCH 0, plugged {PluggedMib(vm)} MiB, MemTotal {back} kB");
        if (!unplugged) _misses.Add($"virtio-mem: plugged_size_mib did not go back to 0 (now {PluggedMib(vm)})");

        output.WriteLine("--- /proc/iomem ---\n" + iomem);
        output.WriteLine("--- the whole console ---\n" + vm.Console);
        Assert.True(_misses.Count == 0, "missing:\n" + string.Join("\n", _misses));
    }

    /// <summary>
    /// Without --enable-pci (virtio-mmio) and with ACPI: the rootfs is a pmem device with `root_device: true`
    /// (root=/dev/pmem0 rw), so the kernel must find the virtio-pmem device, make pmem0 and mount it as root; init runs
    /// and reboots the VM, and flint exits 0.
    /// </summary>
    [Trait("Needs", "kvm")]
    [SkippableFact]
    public void Devices_kernel_over_mmio_boots_from_a_root_pmem_device()
    {
        KvmRequirement.Check();
        string vmlinux = DevicesKernel.Require();
        string rootfs = CopyRootfs();

        var vm = Start("mmio");
        vm.Ok("PUT", "/boot-source", $"{{\"kernel_image_path\": \"{vmlinux}\", \"boot_args\": \"console=ttyS0 reboot=k panic=1 rootwait\"}}");
        vm.Ok("PUT", "/pmem/root", $"{{\"id\": \"root\", \"path_on_host\": \"{rootfs}\", \"root_device\": true, \"read_only\": false}}");
        vm.Ok("PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 256}");
        vm.Ok("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
        bool init = WaitForInit(vm);
        bool exited = init && vm.Process.WaitForExit(120_000);
        string boot = vm.Console;
        output.WriteLine("--- the kernel's device lines ---\n" + DeviceLines(boot));
        output.WriteLine("--- the whole console ---\n" + boot);
        Assert.True(init, "the devices kernel did not reach init from the root pmem device");

        Expect(boot, "ACPI", "ACPI: RSDP 0x00000000000E0000", "ACPI: FACP 0x", "ACPI: DSDT 0x", "ACPI: APIC 0x");
        ExpectAbsent(boot, "no MCFG without PCI", "ACPI: MCFG");
        Expect(boot, "root pmem", "root=/dev/pmem0 rw", "pmem0", "VFS: Mounted root");
        ExpectAbsent(boot, "ACPI Error", "Call Trace", "BUG:");
        if (!exited) _misses.Add("flint did not exit after the guest's reboot");
        else if (vm.Process.ExitCode != 0) _misses.Add($"flint exited {vm.Process.ExitCode} after the guest's reboot");
        Assert.True(_misses.Count == 0, "missing:\n" + string.Join("\n", _misses));
    }

    /// <summary>Types into the guest's shell until it answers (at most <see cref="Answer"/>): init's line comes before the prompt.</summary>
    private static void WaitForShell(FlintConsoleProcess vm) =>
        Assert.True(SpinWait.SpinUntil(() =>
        {
            vm.Type("echo SHELL_$((6*7))");
            return vm.WaitFor("SHELL_42", TimeSpan.FromSeconds(5));
        }, Answer), "the shell did not answer:\n" + vm.Console);

    /// <summary>Waits for init's line; a kernel that panics (panic=1 reboots, flint exits) ends the wait at once.</summary>
    private static bool WaitForInit(FlintConsoleProcess vm)
    {
        SpinWait.SpinUntil(() => vm.Console.Contains("FLINT_GUEST_INIT_OK", StringComparison.Ordinal) || vm.Process.HasExited, Boot);
        Thread.Sleep(200); // the rest of the line and what a panic printed
        return vm.Console.Contains("FLINT_GUEST_INIT_OK", StringComparison.Ordinal);
    }

    private FlintConsoleProcess Start(string name, params string[] args)
    {
        var p = new FlintConsoleProcess(_dir, "dk-" + name, output.WriteLine, args);
        _procs.Add(p);
        MirrorConsole(p, name);
        return p;
    }

    private volatile bool _done;

    /// <summary>
    /// Copies the console to artifacts/kvm-consoles/devices-kernel-NAME.txt every few seconds: xunit shows a test's
    /// output only when it ends, and a nested L1 that times out first (the first nested run of this class did) loses it.
    /// </summary>
    private void MirrorConsole(FlintConsoleProcess p, string name)
    {
        string dir = Path.Combine(Repo.Root, "artifacts", "kvm-consoles");
        Directory.CreateDirectory(dir);
        string file = Path.Combine(dir, $"devices-kernel-{name}.txt");
        new Thread(() =>
        {
            while (!_done)
            {
                try { File.WriteAllText(file, p.Console); } catch (IOException) { }
                Thread.Sleep(3000);
            }
            try { File.WriteAllText(file, p.Console); } catch (IOException) { }
        })
        { IsBackground = true }.Start();
    }

    private string CopyRootfs()
    {
        string src = Path.Combine(Repo.GuestDir, "rootfs.ext4");
        Assert.True(File.Exists(src), $"{src} missing: run scripts/setup.sh");
        string dst = Path.Combine(_dir, "rootfs.ext4");
        File.Copy(src, dst);
        return dst;
    }

    /// <summary>A pmem backing file of <paramref name="size"/> bytes starting with <see cref="PmemMark"/>.</summary>
    private string PmemFile(int size)
    {
        string path = Path.Combine(_dir, "pmem.img");
        using var f = File.Create(path);
        f.SetLength(size);
        f.Write(Encoding.ASCII.GetBytes(PmemMark));
        return path;
    }

    private static string ReadAt(string path, long offset, int count)
    {
        using var f = File.OpenRead(path);
        f.Position = offset;
        var b = new byte[count];
        f.ReadExactly(b);
        return Encoding.ASCII.GetString(b).TrimEnd('\0');
    }

    private static int _shellSeq;
    private bool _shellStuck;

    /// <summary>
    /// Runs <paramref name="cmd"/> in the guest's shell and returns what it printed. The markers are made by the
    /// shell's arithmetic, so the console's echo of the typed line never matches them.
    /// </summary>
    private string Shell(FlintConsoleProcess vm, string cmd)
    {
        int n = Interlocked.Increment(ref _shellSeq) * 1000;
        string begin = $"BEGIN{n + 1}_", end = $"END{n + 1}_";
        if (_shellStuck) return "";
        vm.Type($"echo BEGIN$(({n}+1))_; {cmd}; echo END$(({n}+1))_");
        if (!vm.WaitFor(end, Answer))
        {
            _misses.Add($"the shell did not finish '{cmd}' (later commands skipped)");
            _shellStuck = true; // one wait per test, not one per command
            return "";
        }
        string c = vm.Console;
        int e = c.LastIndexOf(end, StringComparison.Ordinal);
        int b = c.LastIndexOf(begin, e, StringComparison.Ordinal);
        string text = b < 0 ? "" : c[(b + begin.Length)..e].Replace("\r", "");
        output.WriteLine($"$ {cmd}\n{text.Trim()}");
        return text;
    }

    private static int PluggedMib(FlintConsoleProcess vm)
    {
        using var s = vm.Connect();
        var (st, body) = ApiHttp.Request(s, "GET", "/hotplug/memory");
        if (st != 200) return -1;
        using var doc = JsonDocument.Parse(body);
        return doc.RootElement.GetProperty("plugged_size_mib").GetInt32();
    }

    [GeneratedRegex(@"MemTotal:\s+(\d+) kB")]
    private static partial Regex MemTotal();

    private static long MemTotalKib(string text)
    {
        var m = MemTotal().Match(text);
        return m.Success ? long.Parse(m.Groups[1].Value) : -1;
    }

    [GeneratedRegex(@"^.*(ACPI:|PCI|pci |virtio|pmem|nd_|libnvdimm|vmgenid|VFS:|\[vd|MSI).*$", RegexOptions.Multiline)]
    private static partial Regex DeviceLine();

    /// <summary>The console lines that name a device, for the record (docs/*.md quote them).</summary>
    private static string DeviceLines(string console) =>
        string.Join("\n", DeviceLine().Matches(console.Replace("\r", "")).Select(m => m.Value));

    private void Expect(string text, string what, params string[] lines)
    {
        foreach (var l in lines)
            if (!text.Contains(l, StringComparison.Ordinal)) _misses.Add($"{what}: no '{l}'");
    }

    private void ExpectMatch(string text, string what, string pattern)
    {
        if (!Regex.IsMatch(text, pattern)) _misses.Add($"{what}: nothing matches /{pattern}/");
    }

    /// <summary>
    /// The one kernel warning the nested tier always prints, whichever VMM runs the guest (QEMU's too): QEMU TCG's
    /// XSAVE sizes disagree with the kernel's, which then runs without XSAVE (docs/kvm-runs/README.md). Not Flint's.
    /// </summary>
    [GeneratedRegex(@"\[ cut here \][^\n]*\n[^\n]*XSAVE consistency problem.*?end trace[^\n]*", RegexOptions.Singleline)]
    private static partial Regex TcgXsaveWarning();

    private void ExpectAbsent(string text, string what, params string[] lines)
    {
        text = TcgXsaveWarning().Replace(text, "");
        foreach (var l in lines)
            if (text.Contains(l, StringComparison.Ordinal)) _misses.Add($"{what}: '{l}' is there");
    }
}
