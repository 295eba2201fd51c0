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
/// </summary>
public static unsafe class VmBuilder
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
        var boot = config.BootSource!;
        ulong memBytes = GuestMemorySize.Bytes(mc.MemSizeMib);
        uint vcpuCount = (uint)mc.VcpuCount;

        var forcedTemplate = ForcedTemplate(options.CpuTemplate);
        var owned = new List<IDisposable>();
        try
        {
            // 1. Guest memory and the kernel image: no KVM needed yet.
            var memory = restoredMemory
                ?? GuestMemorySize.Allocate(mc.MemSizeMib, () => VhostUserBlockAttach.AllocateRam(config, MemoryLayout.RamRanges(memBytes), ConfigLoader.HugePagesOf(mc)));
            owned.Add(memory);
            // Before the kernel is loaded: a booted VM's first Diff snapshot then holds everything it needs to load.
            if (mc.TrackDirtyPages) memory.EnableDirtyTracking();
            var kernel = restoring ? null : KernelLoader.Load(memory, boot.KernelImagePath);
            (ulong Address, ulong Size)? initrd = !restoring && boot.InitrdPath is { } ip ? InitrdLoader.Load(memory, ip, kernel!.End) : null;

            // 2. The VM.
            var kvm = KvmSystem.Open(options.KvmPath);
            owned.Add(kvm);
            var template = ResolveTemplate(forcedTemplate);
            var vm = kvm.CreateVm();
            owned.Add(vm);
            foreach (var (slot, region) in memory.Regions.Select((r, i) => ((uint)i, r)))
                vm.SetUserMemoryRegion(slot, region.GuestBase, region.Size, (nint)region.Host, mc.TrackDirtyPages);
            vm.SetTssAddress(Layout.TssAddress);
            // Only VMX needs the identity map page; elsewhere (SVM, kvm_pvm) the call may be refused, harmlessly.
            try { vm.SetIdentityMapAddress(Layout.IdentityMapAddress); }
            catch (KvmException e) { Logger.Debug($"Identity map address not set: {e.Message}"); }
            vm.CreateIrqchip();
            vm.CreatePit2();

            // 3. Devices.
            var exit = new VmExit();
            owned.Add(exit);
            var loop = new EventLoop();
            owned.Add(loop);
            var pio = new Bus();
            var mmio = new Bus();

            var serialIrq = NewIrq(vm, Serial.Com1Irq, owned);
            // PUT /serial: output to serial_out_path instead of stdout, and then (as Firecracker) no console input.
            var serialOut = options.ConsoleOutput;
            bool consoleInput = options.ConsoleInputFd >= 0;
            if (config.SerialOutPath is { } serialPath)
            {
                SerialOutFile file;
                try { file = SerialOutFile.Open(serialPath); }
                catch (IOException e) { throw new SerialOutOpenException(e.Message); }
                owned.Add(file);
                serialOut = file;
                consoleInput = false;
            }
            var serialLimiter = config.SerialRateLimiter is { } sl ? new TokenBucket(sl, MonotonicClock.Instance) : null;
            var serial = new Serial(serialOut, serialIrq, serialLimiter);
            pio.Insert(serial, Serial.Com1Port, Serial.PortCount);
            if (consoleInput) AttachConsoleInput(loop, serial, options.ConsoleInputFd);

            var i8042 = new I8042(NewIrq(vm, I8042.Irq, owned),
                () => exit.Request(ExitCodes.Ok, "Received KVM_EXIT_SHUTDOWN after the guest reset the i8042"));
            pio.Insert(i8042, I8042.BasePort, I8042.PortCount);

            if (bootTimer != null) mmio.Insert(bootTimer, Layout.BootTimerAddress, BootTimer.Length);
            loop.Add(exit.Event.Fd, _ => exit.Event.Read());

            var cmdline = new KernelCmdline();
            cmdline.Append(boot.BootArgs ?? KernelCmdline.DefaultBootArgs);
            if (template.ExtraKernelCmdline is { Length: > 0 } extra) cmdline.Append(extra);

            var devices = new VirtioDeviceSet(vm, memory, mmio, loop, cmdline, owned);
            // Firecracker puts the root device first so it is /dev/vda.
            foreach (var d in config.Drives.OrderByDescending(d => d.IsRootDevice))
            {
                if (d.Socket != null) { VhostUserBlockAttach.Attach(d, devices, cmdline); continue; }
                var limiter = new RateLimiter(DeviceConfigs.Limiter(d.RateLimiter, $"drive \"{d.DriveId}\" rate_limiter"));
                var dev = new VirtioBlock(d.PathOnHost!, d.IsReadOnly ?? false, d.DriveId, limiter, writeback: d.CacheType == "Writeback",
                    ioEngine: d.IoEngine == "Async" ? BlockIoEngine.Async : BlockIoEngine.Sync);
                var transport = devices.Add(dev);
                devices.Blocks.Add((d.DriveId, transport, dev));
                if (d.IsRootDevice)
                {
                    string rootDev = d.PartUuid is { } pu ? $"root=PARTUUID={pu}" : "root=/dev/vda";
                    cmdline.Append(rootDev + ((d.IsReadOnly ?? false) ? " ro" : " rw"));
                }
            }
            var mmds = ConfigLoader.Present(config.MmdsConfig) is { } mj ? DeviceConfigs.Mmds(mj) : null;
            foreach (var n in config.NetworkInterfaces ?? [])
            {
                var net = DeviceConfigs.Net(n);
                var stack = mmds != null && mmds.Interfaces.Contains(net.IfaceId)
                    ? new MmdsNetworkStack(options.MmdsStore, mmds.Version, mmds.Ipv4Address) : null;
                var rx = new RateLimiter(net.Rx);
                var tx = new RateLimiter(net.Tx);
                var tap = options.Preopened?.TakeTap(net.IfaceId, net.HostDevName) ?? Tap.Open(net.HostDevName);
                VirtioNet dev;
                try { dev = new VirtioNet(tap, net.GuestMac, new NetRateLimiterAdapter(rx), new NetRateLimiterAdapter(tx), stack); }
                catch { tap.Dispose(); throw; }
                devices.Add(dev);
                devices.Nets.Add((net.IfaceId, dev, stack, rx, tx));
            }
            if (ConfigLoader.Present(config.Vsock) is { } vj)
            {
                var vs = DeviceConfigs.Vsock(vj);
                if (options.Preopened?.TakeVsock(vs.UdsPath) is { } listener)
                {
                    try { devices.Vsock = new VirtioVsock(vs.GuestCid, listener, loop); }
                    catch { listener.Dispose(); throw; }
                }
                else devices.Vsock = new VirtioVsock(vs.GuestCid, vs.UdsPath, loop);
                devices.Add(devices.Vsock);
            }
            if (ConfigLoader.Present(config.Entropy) is { } ej)
            {
                devices.Rng = new VirtioRng(new RateLimiter(DeviceConfigs.Entropy(ej)));
                devices.Add(devices.Rng);
            }
            if (ConfigLoader.Present(config.Balloon) is { } bj)
            {
                var b = DeviceConfigs.Balloon(bj);
                // Firecracker's Balloon::new: log_dev_preview_warning("Free Page Hinting", None).
                if (b.FreePageHinting) Logger.Warn("[DevPreview] Free Page Hinting is in development preview.");
                devices.Balloon = new VirtioBalloon(b.AmountMib, b.DeflateOnOom, b.StatsPollingIntervalS,
                    b.FreePageHinting, b.FreePageReporting);
                devices.Add(devices.Balloon);
            }

            // 4. Boot structures in guest memory.
            var cmdBytes = cmdline.ToBytes();
            if (kernel != null)
            {
                memory.Write(Layout.CmdlineStart, cmdBytes);
                BootParams.Write(memory, kernel, Layout.CmdlineStart, cmdBytes.Length - 1, initrd, memBytes);
                MpTable.Write(memory, vcpuCount);
            }

            // 5. vCPUs. A custom CPU template edits the host's CPUID before normalisation, as Firecracker's does.
            var supported = kvm.GetSupportedCpuid();
            var custom = ConfigLoader.Present(config.CpuConfig) is { } cj ? CpuTemplateConfig.Parse(cj) : StaticTemplate(mc.CpuTemplate, supported);
            foreach (int cap in custom?.RequiredKvmCapabilities ?? [])
                if (kvm.CheckExtension(cap) <= 0) throw new ConfigException($"cpu-config: this host's KVM lacks capability {cap}.");
            if (custom != null)
            {
                var edited = supported.ToList();
                custom.ApplyCpuid(edited);
                supported = [.. edited];
            }
            var metrics = new VcpuMetrics();
            var runners = new List<VcpuRunner>();
            for (uint id = 0; id < vcpuCount; id++)
            {
                var vcpu = vm.CreateVcpu(id);
                owned.Add(vcpu);
                var cpuid = CpuidNormalizer.Normalize(supported, id, vcpuCount, mc.Smt).ToList();
                template.Apply(cpuid);
                vcpu.SetCpuid2(cpuid.ToArray());
                if (kernel == null)
                {
                    // Restoring: registers, MSRs and the LAPIC come from the snapshot (SnapshotRestorer).
                    runners.Add(new VcpuRunner(vcpu, pio, mmio, exit, metrics));
                    continue;
                }
                if (custom is { Msrs.Count: > 0 })
                {
                    // The template's bits go on the vCPU's current values; the boot-protocol MSRs are written after.
                    var current = custom.Msrs.Select(m => new KvmMsrEntry { Index = m.Address }).ToArray();
                    int read = vcpu.GetMsrs(current);
                    if (read != current.Length) throw new ConfigException($"cpu-config: KVM cannot read MSR 0x{current[read].Index:x}.");
                    var values = current.ToDictionary(m => m.Index, m => m.Data);
                    var edits = custom.MsrEntries(a => values[a]);
                    int wrote = vcpu.SetMsrs(edits);
                    if (wrote != edits.Length) throw new ConfigException($"cpu-config: KVM refused MSR 0x{edits[wrote].Index:x}.");
                }
                var msrs = BootCpuState.BootMsrs().Where(m => !template.SkipMsr(m.Index)).ToArray();
                int set = vcpu.SetMsrs(msrs);
                if (set != msrs.Length)
                    throw new InvalidOperationException($"KVM_SET_MSRS accepted {set} of {msrs.Length} boot MSRs (first rejected: 0x{msrs[set].Index:x})");
                var lapic = vcpu.GetLapic();
                Lapic.ConfigureLint(ref lapic);
                vcpu.SetLapic(lapic);
                if (id == 0)
                {
                    BootCpuState.WriteTables(memory, kernel.Kind);
                    vcpu.SetRegs(BootCpuState.Regs(kernel));
                    vcpu.SetSregs(BootCpuState.Sregs(vcpu.GetSregs(), kernel.Kind));
                    vcpu.SetFpu(BootCpuState.Fpu());
                }
                runners.Add(new VcpuRunner(vcpu, pio, mmio, exit, metrics));
            }

            string cmdText = System.Text.Encoding.ASCII.GetString(cmdBytes, 0, cmdBytes.Length - 1);
            Logger.Debug($"Kernel command line: {cmdText}");
            var vmm = new Vmm
            {
                Kvm = kvm, Vm = vm, Memory = memory, PioBus = pio, MmioBus = mmio, EventLoop = loop, Exit = exit,
                Vcpus = runners, Serial = serial, I8042 = i8042, BootTimer = bootTimer, Devices = devices,
                KernelCmdline = cmdText, VcpuMetrics = metrics, TrackDirtyPages = mc.TrackDirtyPages,
                SnapshotCaps = Snapshot.KvmSnapshotCaps.Probe(kvm),
            };
            // Dispose in reverse creation order: vCPUs before the VM before /dev/kvm, memory last.
            foreach (var o in owned) vmm.Own(o);
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

    internal static EventFdInterrupt NewIrq(Vm vm, uint gsi, List<IDisposable> owned)
    {
        var fd = new EventFd();
        owned.Add(fd);
        vm.RegisterIrqfd(fd, gsi);
        return new EventFdInterrupt(fd);
    }

    /// <summary>Feeds the console input fd (stdin) into the serial device from the event loop.</summary>
    private static unsafe void AttachConsoleInput(EventLoop loop, Serial serial, int fd)
    {
        var buf = new byte[64];
        try
        {
            loop.Add(fd, _ =>
            {
                fixed (byte* p = buf)
                {
                    nint n = Libc.read(fd, p, (nuint)buf.Length);
                    if (n <= 0) { loop.Remove(fd); return; } // EOF or error: stop polling stdin
                    int taken = serial.EnqueueInput(buf.AsSpan(0, (int)n));
                    if (taken < n) serial.Metrics.MissedReadCount += n - taken;
                }
            });
        }
        catch (SysException)
        {
            // stdin is a regular file or /dev/null: epoll cannot watch it, and there is nothing to forward.
        }
    }
}
