using System.Diagnostics;
using System.Text.Json;
using Flint.Arch.X86;
using Flint.Devices.Mmds;
using Flint.Devices.Virtio;
using Flint.Memory;
using Flint.Snapshot;
using Flint.Vmm.Config;
using Flint.Vmm.Logging;

namespace Flint.Vmm.Snapshot;

/// <summary>
/// PUT /snapshot/create on a paused VM: the state file (devices first, as Firecracker: a device may still raise an
/// interrupt while it is saved, and the irqchip saved after it then holds it), then the memory file. Runs on the VMM
/// thread; each vCPU saves its own registers on its parked thread.
/// </summary>
public static class SnapshotCreator
{
    public const string Prefix = "Create snapshot error: ";

    public static void Create(Vmm vmm, VmConfig config, MmdsStore? mmds, SnapshotCreateParams p)
    {
        if (!vmm.IsPaused) throw new SnapshotException(Prefix + "Cannot save the microVM state: Vcpu is in unexpected state.");
        // Firecracker's check_unsnapshottable_devices: a vhost-user backend's state is not Flint's to save.
        if (vmm.Devices.VhostUserBlocks.Count > 0)
            throw new SnapshotException(Prefix + "Cannot save the microVM state: Operation not allowed: Devices without snapshot support are present: "
                + string.Join(",", vmm.Devices.VhostUserBlocks.Select(b => $"vhost-user-block(id: {b.DriveId})")));
        // Firecracker's Diff without track_dirty_pages takes the pages the host holds (mincore) instead of KVM's log.
        var memInfo = !p.Diff ? MemoryFileInfo.Full
            : new MemoryFileInfo(MemoryFileKind.Diff, (uint)GuestMemory.PageSize, vmm.TrackDirtyPages ? DirtySource.DirtyLog : DirtySource.Mincore);

        // A line the guest had half written reaches the console now: the restored guest writes the rest of it.
        vmm.Serial.Flush();
        // Firecracker's prepare_save: vsock connections do not survive a snapshot; the guest is told in the saved memory.
        vmm.Devices.Vsock?.PrepareSave();
        var file = new SnapshotFile();
        try
        {
            file.Add(SnapshotSections.Config, ConfigSection(config));
            file.Add(SnapshotSections.Memory, MemorySection(config));
            Save(file, MemoryFileInfo.SectionName, memInfo.Write);
            Save(file, SnapshotSections.Serial, vmm.Serial.SaveState);
            Save(file, SnapshotSections.I8042, vmm.I8042.SaveState);
            for (int i = 0; i < vmm.Devices.Transports.Count; i++)
                Save(file, SnapshotSections.Virtio(i), vmm.Devices.Transports[i].SaveState);
            for (int i = 0; i < vmm.Devices.Transports.Count; i++)
                Save(file, SnapshotSections.Runtime(i), vmm.Devices.Transports[i].Device.SaveRuntime);
            if (vmm.Devices.Pci is { } pci) Save(file, SnapshotSections.Pci, w => PciStateCodec.Save(pci, w));
            if (vmm.Devices.Vsock is { } vsock) Save(file, SnapshotSections.Vsock, w => w.Bool(vsock.PendingEventAck));
            if (vmm.Devices.Memory is { } hotplug) Save(file, VirtioMemStateCodec.Section, w => VirtioMemStateCodec.Save(hotplug, vmm.Memory, w));
            if (vmm.Acpi is { } acpi) Save(file, SnapshotSections.Acpi, w => AcpiStateCodec.Save(acpi, w));
            if (vmm.Devices.Pmems.Count > 0)
                Save(file, SnapshotSections.Pmem, w =>
                {
                    w.U32((uint)vmm.Devices.Pmems.Count);
                    foreach (var p in vmm.Devices.Pmems) { w.U64(p.WindowStart); w.U64(p.WindowSize); }
                });
            if (mmds != null && mmds.IsInitialized)
            {
                var w = new StateWriter();
                w.String(mmds.GetJson());
                file.Add(SnapshotSections.Mmds, w);
            }
            var deadline = Deadline.After(VcpuRunner.DefaultAckTimeout);
            for (int i = 0; i < vmm.Vcpus.Count; i++)
            {
                var runner = vmm.Vcpus[i];
                var vcpu = runner.KvmVcpu ?? throw new InvalidOperationException("vCPU without KVM state");
                var w = new StateWriter();
                runner.RunWhileParked(() => VcpuStateCodec.Save(vcpu, vmm.SnapshotCaps, w), deadline);
                file.Add(SnapshotSections.Vcpu(i), w);
            }
            Save(file, SnapshotSections.Vm, w => VmStateCodec.Save(vmm.Vm, w));
        }
        catch (Exception e) when (e is Flint.Kvm.KvmException or VcpuStateException)
        {
            throw new SnapshotException(Prefix + $"Cannot save the microVM state: {e.Message}");
        }

        try { file.Save(p.SnapshotPath); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SnapshotException(Prefix + $"Cannot perform open on the snapshot backing file: {IoText.Of(e, p.SnapshotPath)}");
        }
        SaveMemory(vmm, p.MemFilePath, memInfo.Source);
    }

    /// <summary>
    /// The memory file, then both dirty bitmaps cleared (KVM's by reading it, the VMM's own), after a Full as after a
    /// Diff, as Firecracker: the next Diff holds what changed since this snapshot.
    /// </summary>
    private static void SaveMemory(Vmm vmm, string path, DirtySource source)
    {
        try
        {
            switch (source)
            {
                case DirtySource.None:
                    vmm.Memory.DumpToFile(path);
                    if (vmm.TrackDirtyPages) ResetDirtyLogs(vmm);
                    break;
                case DirtySource.DirtyLog:
                    vmm.Memory.DumpDirtyToFile(path, (slot, _, bits) => vmm.Vm.GetDirtyLog((uint)slot, bits));
                    break;
                default:
                    vmm.Memory.DumpDirtyToFile(path, (_, region, bits) => GuestMemory.ResidentPages(region, bits));
                    break;
            }
        }
        catch (MemoryFileIoException e)
        {
            throw new SnapshotException(Prefix + $"Cannot perform {e.Operation} on the memory backing file: {e.Message}");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new SnapshotException(Prefix + $"Cannot perform write on the memory backing file: {IoText.Of(e, path)}");
        }
        catch (Flint.Kvm.KvmException e)
        {
            throw new SnapshotException(Prefix + $"Cannot get dirty bitmap: Failed to get KVM's dirty log: {Flint.Sys.Libc.StrError(e.Errno)} (os error {e.Errno})");
        }
        catch (Flint.Sys.SysException e)
        {
            throw new SnapshotException(Prefix + $"Cannot get dirty bitmap: Error calling mincore: {Flint.Sys.Libc.StrError(e.Errno)} (os error {e.Errno})");
        }
    }

    /// <summary>Reads (and so clears) KVM's dirty log of every slot, and clears the VMM's bitmap.</summary>
    private static void ResetDirtyLogs(Vmm vmm)
    {
        var regions = vmm.Memory.Regions;
        for (int i = 0; i < regions.Count; i++)
        {
            var bits = new ulong[DirtyPageBitmap.WordsFor(regions[i].Size / GuestMemory.PageSize)];
            try { vmm.Vm.GetDirtyLog((uint)i, bits); }
            catch (Flint.Kvm.KvmException e) { Logger.Warn($"Dirty log of slot {i} not reset: {e.Message}"); }
        }
        if (vmm.Memory.Hotplug is { } area)
            for (int s = 0; s < area.SlotCount; s++)
            {
                if (!area.IsSlotPlugged(s)) continue;
                var bits = new ulong[DirtyPageBitmap.WordsFor(area.SlotSize / GuestMemory.PageSize)];
                try { vmm.Vm.GetDirtyLog(area.FirstSlot + (uint)s, bits); }
                catch (Flint.Kvm.KvmException e) { Logger.Warn($"Dirty log of hotplug slot {s} not reset: {e.Message}"); }
            }
        vmm.Memory.ResetDirty();
    }

    private static void Save(SnapshotFile f, string name, Action<StateWriter> save)
    {
        var w = new StateWriter();
        save(w);
        f.Add(name, w);
    }

    /// <summary>The configuration without the process's own outputs (logger, metrics): a loading process keeps its own.</summary>
    private static StateWriter ConfigSection(VmConfig c)
    {
        var copy = new VmConfig
        {
            BootSource = c.BootSource, Drives = c.Drives, MachineConfig = c.MachineConfig, CpuConfig = c.CpuConfig,
            NetworkInterfaces = c.NetworkInterfaces, Vsock = c.Vsock, MmdsConfig = c.MmdsConfig, Entropy = c.Entropy,
            Balloon = c.Balloon,
            // Restore maps the same backing files again at the same windows, as Firecracker's pmem persist reopens them.
            Pmem = c.Pmem,
            // Restore builds the device and its area again from it; the virtio-mem section holds what was plugged.
            MemoryHotplug = c.MemoryHotplug,
        };
        var w = new StateWriter();
        w.String(JsonSerializer.Serialize(copy, ConfigJsonContext.Default.VmConfig));
        return w;
    }

    /// <summary>Guest RAM's regions (guest base, size), in memory file order; the load checks them against the config.</summary>
    public static StateWriter MemorySection(VmConfig c)
    {
        var ranges = MemoryLayout.RamRanges(checked((ulong)(c.MachineConfig ?? new MachineConfig()).MemSizeMib << 20)).ToArray();
        var w = new StateWriter();
        w.U32((uint)ranges.Length);
        foreach (var (gb, size) in ranges) { w.U64(gb); w.U64(size); }
        return w;
    }

    internal static long ElapsedUs(long startTimestamp) => (long)Stopwatch.GetElapsedTime(startTimestamp).TotalMicroseconds;
}
