using Flint.Arch.X86;
using Flint.Devices;
using Flint.Devices.Legacy;
using Flint.Devices.Virtio;
using Flint.Devices.Mmds;
using Flint.Devices.RateLimiting;
using Flint.Devices.Virtio.Balloon;
using Flint.Devices.Virtio.Block;
using Flint.Devices.Virtio.Net;
using Flint.Devices.Virtio.Rng;
using Flint.Devices.Virtio.Vsock;
using Flint.Kvm;
using Flint.Memory;
using Flint.Sys;
using Flint.Vmm.Config;
using Flint.Vmm.Logging;

namespace Flint.Vmm.Builder;

/// <summary>
/// The one place a microVM is assembled from its configuration (Firecracker's builder.rs, in spirit):
/// guest memory and kernel first (so a bad kernel is refused before KVM is touched), then the KVM VM,
/// irqchip and PIT, legacy devices, virtio-mmio devices, boot structures, and finally the vCPUs.
/// <see cref="Build"/> only calls the steps in order; each step lives in its own file (VmBuilder.StepName.cs), takes
/// what it needs as arguments, and is tested on its own (the device steps without KVM, through <see cref="IVmEventFds"/>).
/// A new device is one more step file and one more call line in <see cref="Build"/>.
/// </summary>
public static partial class VmBuilder
{
    /// <param name="restoredMemory">
    /// Snapshot restore: guest RAM as the snapshot loader made it (mapped from the memory file, or served by a uffd
    /// handler); the VM owns it from here on, failure included. No kernel is loaded and no boot state is written (the
    /// snapshot's state is applied after the build, before the vCPUs start).
    /// </param>
    public static Vmm Build(VmConfig config, VmOptions options, GuestMemory? restoredMemory = null)
    {
        // Firecracker takes its boot timestamp (wall and process CPU) as the build starts: the boot timer reports
        // from here, so neither process start-up nor the time the VM sat configured counts as boot time.
        BootTimer? bootTimer = options.BootTimer ? BootTimer.StartingNow(m => Logger.Info(m)) : null;
        bool restoring = restoredMemory != null;
        // A restored VM needs no kernel file: its boot-source is only what GET /vm/config reports.
        if (!restoring) ConfigLoader.Validate(config);
        DeviceLogSink.Bind(); // device failures reach the process log (rate limited per device)
        var mc = config.MachineConfig ?? new MachineConfig();
        ulong memBytes = GuestMemorySize.Bytes(mc.MemSizeMib);
        uint vcpuCount = (uint)mc.VcpuCount;

        var forcedTemplate = ForcedTemplate(options.CpuTemplate);
        var owned = new List<IDisposable>();
        try
        {
            // Guest memory and the kernel image first: no KVM needed yet, so a bad kernel is refused before KVM is touched.
            var memory = CreateGuestMemory(config, mc, memBytes, restoredMemory, owned);
            LoadedKernel? kernel = null;
            (ulong Address, ulong Size)? initrd = null;
            if (!restoring) kernel = LoadKernel(memory, config.BootSource!, out initrd);

            var (kvm, vm, template) = CreateVm(options, memory, mc.TrackDirtyPages, forcedTemplate, owned);

            var exit = new VmExit();
            owned.Add(exit);
            var loop = new EventLoop();
            owned.Add(loop);
            var pio = new Bus();
            var mmio = new Bus();
            var legacy = AttachLegacyDevices(config, options, vm, pio, loop, exit, owned);
            if (bootTimer != null) mmio.Insert(bootTimer, Layout.BootTimerAddress, BootTimer.Length);
            loop.Add(exit.Event.Fd, _ => exit.Event.Read());

            var cmdline = BaseKernelCmdline(config.BootSource!, template);
            var devices = new VirtioDeviceSet(vm, memory, mmio, loop, cmdline, owned);
            AttachPciSegment(options, devices, vm, memory, mmio, pio, loop, owned);
            AttachBlockDevices(config, devices, cmdline);
            AttachNetDevices(config, options, devices);
            AttachPmemDevices(config, vm, memory, mmio, devices, cmdline, owned, options.Restore?.PmemWindows); // after net, as Firecracker's attach order
            AttachVsock(config, options, loop, devices);
            AttachEntropy(config, devices);
            AttachBalloon(config, devices);
            AttachVirtioMem(config.MemoryHotplug, kvm, vm, memory, devices);

            // After every virtio device (the DSDT lists them all), before the boot structures.
            var acpi = AttachAcpiDevices(vm, memory, devices, owned, vcpuCount, boot: kernel != null,
                pci: devices.Pci != null ? new Flint.Arch.X86.Acpi.PciSegmentInfo(Pci.PciDevices.Ecam.BaseAddress) : null);

            var cmdBytes = cmdline.ToBytes();
            if (kernel != null) WriteBootStructures(memory, kernel, cmdBytes, initrd, memBytes, vcpuCount);

            var metrics = new VcpuMetrics();
            var runners = CreateVcpus(config, mc, kvm, vm, template, memory, kernel, new VcpuExitTargets(pio, mmio, exit, metrics), owned);

            string cmdText = System.Text.Encoding.ASCII.GetString(cmdBytes, 0, cmdBytes.Length - 1);
            Logger.Debug($"Kernel command line: {cmdText}");
            var vmm = new Vmm
            {
                Kvm = kvm, Vm = vm, Memory = memory, PioBus = pio, MmioBus = mmio, EventLoop = loop, Exit = exit,
                Vcpus = runners, Serial = legacy.Serial, I8042 = legacy.I8042, BootTimer = bootTimer, Devices = devices, Acpi = acpi,
                KernelCmdline = cmdText, VcpuMetrics = metrics, TrackDirtyPages = mc.TrackDirtyPages,
                SnapshotCaps = Snapshot.KvmSnapshotCaps.Probe(kvm),
            };
            // Dispose in reverse creation order: vCPUs before the VM before /dev/kvm, memory last.
            vmm.TakeOwned(owned);
            return vmm;
        }
        catch
        {
            for (int i = owned.Count - 1; i >= 0; i--)
            {
                try { owned[i].Dispose(); } catch (SysException) { }
            }
            throw;
        }
    }

    /// <summary>
    /// machine-config's static template (Firecracker's get_cpu_template): null for none; refused, with Firecracker's
    /// text, on a host of the other vendor or a model the template does not list. The vendor and model are the host's
    /// as KVM reports them (leaves 0 and 1 of its supported CPUID carry the host's values).
    /// A cpu-config template, when present, wins (Firecracker's from_json sets it after machine-config).
    /// </summary>
    public static CustomCpuTemplate? StaticTemplate(string? name, KvmCpuidEntry2[] hostCpuid)
    {
        if (StaticCpuTemplates.ByName(name) is not { } template) return null;
        var leaf0 = hostCpuid.FirstOrDefault(e => e.Function == 0);
        var leaf1 = hostCpuid.FirstOrDefault(e => e.Function == 1);
        string vendor = StaticCpuTemplates.VendorId(leaf0.Ebx, leaf0.Edx, leaf0.Ecx);
        if (StaticCpuTemplates.HostError(name!, vendor, leaf1.Eax) is { } error)
            throw new ConfigException($"Failed to get CPU template: {error}");
        return template;
    }

    /// <summary>The forced template (checked before anything is allocated), or null to detect it once KVM is open.</summary>
    private static ICpuTemplate? ForcedTemplate(string? name) => name == null ? null
        : CpuTemplates.ByName(name) ?? throw new ConfigException($"Unknown CPU template \"{name}\" (None, KvmPvm).");

    /// <summary>Detects the template after /dev/kvm opened, so a host without KVM is not told it is a kvm_pvm host.</summary>
    private static ICpuTemplate ResolveTemplate(ICpuTemplate? forced)
    {
        if (forced != null)
        {
            Logger.Info($"CPU template {forced.Name} applied: forced by --cpu-template.");
            return forced;
        }
        var host = KvmHostKindDetector.Detect();
        var template = CpuTemplates.Detect(host.Kind == KvmHostKind.KvmPvm);
        // Said at Info because it changes what the guest sees (CPUID, its kernel command line) and why its user space
        // cannot run on such a host; a user reading the log should not have to guess.
        if (template != CpuTemplates.None) Logger.Info(KvmPvmTemplate.AppliedMessage(host.Reason));
        else Logger.Debug($"No built-in CPU template: {host.Reason}.");
        return template;
    }

    internal static EventFdInterrupt NewIrq(IVmEventFds vm, uint gsi, List<IDisposable> owned)
    {
        var fd = new EventFd();
        owned.Add(fd);
        vm.RegisterIrqfd(fd, gsi);
        return new EventFdInterrupt(fd);
    }
}
