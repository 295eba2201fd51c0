namespace Flint.Vmm.Tests;

public sealed partial class DevicesKernelKvmTests
{
    /// <summary>
    /// `--enable-pci` with the root disk served by a vhost-user backend (qemu-storage-daemon exporting a copy of the
    /// rootfs): Linux's own virtio-pci driver finds the function, sets up its MSI-X vectors (masking entries while it
    /// programs them, as Linux does), mounts root over it and runs init, every completion travelling backend -> call fd
    /// -> Flint's relay -> the queue's vector. Then reads from the shell keep the disk busy and the queue's MSI-X line in
    /// /proc/interrupts must count them.
    /// </summary>
    [Trait("Needs", "kvm")]
    [SkippableFact]
    public void Devices_kernel_over_pci_boots_from_a_vhost_user_root_disk()
    {
        KvmRequirement.Check();
        Skip.IfNot(File.Exists(VhostUserBackendProcess.QemuStorageDaemon), "qemu-storage-daemon is not installed");
        string vmlinux = DevicesKernel.Require();
        string rootfs = CopyRootfs();
        string sock = Path.Combine(_dir, "root.sock");
        using var backend = VhostUserBackendProcess.ServeBlock(rootfs, sock);
        backend.WaitForSocket(sock, TimeSpan.FromSeconds(60));

        var vm = Start("vhost-user-pci", "--enable-pci");
        vm.Ok("PUT", "/boot-source", $"{{\"kernel_image_path\": \"{vmlinux}\", \"boot_args\": \"console=ttyS0 reboot=k panic=1 flint_shell\"}}");
        vm.Ok("PUT", "/drives/rootfs", $"{{\"drive_id\": \"rootfs\", \"socket\": \"{sock}\", \"is_root_device\": true}}");
        vm.Ok("PUT", "/machine-config", "{\"vcpu_count\": 1, \"mem_size_mib\": 256}");
        vm.Ok("PUT", "/actions", "{\"action_type\": \"InstanceStart\"}");
        bool init = WaitForInit(vm);
        string boot = vm.Console;
        output.WriteLine("--- the kernel's device lines ---\n" + DeviceLines(boot));
        Assert.True(init, "the devices kernel did not reach init from the vhost-user root disk over PCI:\n" + boot + "\n--- backend ---\n" + backend.Output);

        Expect(boot, "PCI", "PCI host bridge to bus 0000:00", "pci 0000:00:00.0: [8086:0d57]");
        ExpectMatch(boot, "virtio-blk on PCI", @"pci 0000:00:0\d\.0: \[1af4:1042\]");
        Expect(boot, "root disk over vhost-user", "[vda]", "VFS: Mounted root");
        ExpectAbsent(boot, "ACPI Error", "Call Trace", "BUG:");

        WaitForShell(vm);
        Shell(vm, "mount -t proc proc /proc 2>/dev/null; mount -t sysfs sysfs /sys 2>/dev/null; echo 3 > /proc/sys/vm/drop_caches");
        long before = VirtioMsiCount(Shell(vm, "grep -i virtio /proc/interrupts"));
        string read = Shell(vm, "dd if=/dev/vda of=/dev/null bs=64k count=64 2>&1");
        string after = Shell(vm, "grep -i virtio /proc/interrupts");
        output.WriteLine($"dd: {read}\n/proc/interrupts after: {after}");
        Expect(after, "MSI-X interrupts for the disk", "PCI-MSI");
        if (VirtioMsiCount(after) <= before) _misses.Add($"the disk's MSI-X interrupts did not grow with 64 reads ({before} before, {VirtioMsiCount(after)} after)");
        Expect(read, "reads over vhost-user", "64+0 records out"); // busybox dd prints no byte count

        output.WriteLine("--- the whole console ---\n" + vm.Console);
        Assert.True(_misses.Count == 0, "missing:\n" + string.Join("\n", _misses));
    }

    /// <summary>The sum of the first count column over the virtio lines of /proc/interrupts (one vCPU).</summary>
    private static long VirtioMsiCount(string lines)
    {
        long sum = 0;
        foreach (var line in lines.Split('\n'))
        {
            var cols = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (cols.Length > 2 && cols[0].EndsWith(':') && long.TryParse(cols[1], out long n)) sum += n;
        }
        return sum;
    }
}
