using System.Text.Json;
using System.Text.Json.Nodes;
using Flint.Arch.X86;
using Flint.Devices.Mmds;
using Flint.Devices.Virtio;
using Flint.Memory;
using Flint.Sys;
using Flint.Snapshot;
using Flint.Vmm.Config;

namespace Flint.Vmm.Snapshot;

/// <summary>
/// PUT /snapshot/load: reads and checks the state file and the memory file, builds the VM from the snapshot's
/// configuration with guest RAM mapped MAP_PRIVATE from the memory file, applies the saved VM, vCPU and device state
/// on this (the VMM) thread before any vCPU thread exists, then starts the vCPUs parked. Everything that can be checked
/// before the VM is built is (a bad file changes nothing); a failure after that is fatal, as in Firecracker.
/// </summary>
public static class SnapshotLoader
{
    public const string Prefix = "Load snapshot error: ";
    private const string Restore = Prefix + "Failed to restore from snapshot: ";
    private const string FromFile = Restore + "Failed to get snapshot state from file: ";

    /// <param name="build">Builds the VM from a configuration and its restored guest memory, which it takes ownership
    /// of (VmBuilder.Build in restore mode), following the plan: whether its virtio devices are virtio-pci functions (the
    /// snapshot's, as Firecracker: a PCI snapshot restores as one whether or not this process got --enable-pci), and
    /// where each function and pmem window was.</param>
    /// <param name="start">Starts the restored VM's vCPUs parked (with their seccomp filter).</param>
    /// <param name="uffdSource">Where the Uffd backend gets its userfaultfd: /dev/userfaultfd only when this thread's
    /// seccomp filter traps the syscall (Flint's process baseline does).</param>
    public static (VmConfig Config, Vmm Vmm) Load(SnapshotLoadParams p, Func<VmConfig, GuestMemory, RestorePlan, Vmm> build, Action<Vmm> start, MmdsStore? mmds,
        UffdSource uffdSource = UffdSource.SyscallThenDevice)
    {
        var (file, config) = ReadState(p);
        PciSnapshotState? pci;
        RestorePlan plan;
        try
        {
            pci = PciStateCodec.ParseIfPresent(file);
            plan = new RestorePlan(pci != null, pci != null ? PciStateCodec.Placement(pci, config) : null, PmemWindowCodec.Parse(file, config));
        }
        catch (SnapshotFormatException e) { throw new SnapshotException(FromFile + $"Failed to load snapshot state from file: {e.Message}"); }
        var hotplug = ReadHotplugLayout(file, config);
        var memory = p.MemBackendType == "Uffd" ? MemoryFromUffd(p.MemBackendPath, config, uffdSource, hotplug)
            : MemoryFromFile(p.MemBackendPath, config, hotplug);

        Vmm vmm;
        try { vmm = build(config, memory, plan); }
        catch (Exception e) when (IsBuildFailure(e))
        {
            memory.Dispose(); // the builder disposed it already unless it failed before taking it (Dispose is idempotent)
            throw new SnapshotException(Restore + $"Failed to build microVM from snapshot: {Describe(e)}", fatal: true);
        }
        try
        {
            ApplyState(file, config, vmm, p.ClockRealtime, mmds, pci);
            start(vmm);
        }
        catch (Exception e) when (IsBuildFailure(e) || e is SnapshotFormatException or MmdsStoreException or VcpuStateException)
        {
            vmm.Dispose();
            throw new SnapshotException(Restore + $"Failed to build microVM from snapshot: {Describe(e)}", fatal: true);
        }
        return (config, vmm);
    }

    /// <summary>Our own messages as they are; an I/O failure in the OS's words.</summary>
    private static string Describe(Exception e) =>
        e is (IOException and not Flint.Memory.GuestMemoryFileException) or UnauthorizedAccessException ? IoText.Of(e) : e.Message;

    private static bool IsBuildFailure(Exception e) => e is Builder.PmemAttachException or Flint.Kvm.KvmException or Flint.Sys.SysException or IOException
        or ConfigException or InvalidOperationException or Flint.Memory.GuestMemoryException or ArgumentException
        or UnauthorizedAccessException or JsonException;

    /// <summary>The state file, its configuration with the request's overrides applied, and the layout checks.</summary>
    public static (SnapshotFile File, VmConfig Config) ReadState(SnapshotLoadParams p)
    {
        SnapshotFile file;
        try { file = SnapshotFile.Load(p.SnapshotPath); }
        catch (SnapshotFormatException e) { throw new SnapshotException(FromFile + $"Failed to load snapshot state from file: {e.Message}"); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new SnapshotException(FromFile + $"Failed to open snapshot file: {IoText.Of(e, p.SnapshotPath)}");
        }
        try
        {
            var config = ReadConfig(file, p.MemBackendType);
            ApplyOverrides(config, p);
            var mc = config.MachineConfig!;
            config.MachineConfig = new MachineConfig
            {
                VcpuCount = mc.VcpuCount, MemSizeMib = mc.MemSizeMib, Smt = mc.Smt, HugePages = mc.HugePages,
                CpuTemplate = mc.CpuTemplate, TrackDirtyPages = p.TrackDirtyPages,
            };
            return (file, config);
        }
        catch (SnapshotFormatException e) { throw new SnapshotException(FromFile + $"Failed to load snapshot state from file: {e.Message}"); }
    }

    private static VmConfig ReadConfig(SnapshotFile file, string memBackendType)
    {
        var r = file.Open(SnapshotSections.Config);
        string json = r.RequiredString(SnapshotFormat.MaxFileSize);
        r.ExpectEnd();
        VmConfig? config;
        try { config = JsonSerializer.Deserialize(json, ConfigJsonContext.Default.VmConfig); }
        catch (JsonException) { throw new SnapshotFormatException("Section config does not hold a valid VM configuration."); }
        if (config?.MachineConfig is not { } mc || config.BootSource == null)
            throw new SnapshotFormatException("Section config lacks the machine configuration or the boot source.");
        if (mc.VcpuCount < 1 || mc.VcpuCount > ConfigLoader.MaxVcpus || mc.MemSizeMib <= 0 || mc.MemSizeMib > (1L << 30))
            throw new SnapshotFormatException("Section config holds an invalid machine configuration.");
        if (mc.HugePages is "2M" && memBackendType != "Uffd")
            throw new SnapshotException(Restore + "Failed to load guest memory: Error creating guest memory from file: Cannot restore hugetlbfs backed snapshot by mapping the memory file. Please use uffd.");

        // The memory layout the snapshot was taken with must be the one this build derives from the configuration.
        var saved = file.Open(SnapshotSections.Memory);
        int n = saved.Count(16);
        var expected = MemoryLayout.RamRanges(checked((ulong)mc.MemSizeMib << 20));
        if (n != expected.Length) throw new SnapshotFormatException("Section memory does not match the configured memory size.");
        foreach (var (gb, size) in expected)
            if (saved.U64() != gb || saved.U64() != size) throw new SnapshotFormatException("Section memory does not match the configured memory size.");
        saved.ExpectEnd();

        int vcpus = file.SectionNames("vcpu/").Count();
        if (vcpus != mc.VcpuCount) throw new SnapshotFormatException($"The snapshot holds {vcpus} vCPU states for {mc.VcpuCount} vCPUs.");
        return config;
    }

    /// <summary>The virtio-mem area the memory file holds after boot RAM (null: none), checked before anything is mapped.</summary>
    private static HotplugLayout? ReadHotplugLayout(SnapshotFile file, VmConfig config)
    {
        try { return VirtioMemStateCodec.Layout(file, config, checked((ulong)config.MachineConfig!.MemSizeMib << 20)); }
        catch (SnapshotFormatException e) { throw new SnapshotException(FromFile + $"Failed to load snapshot state from file: {e.Message}"); }
    }

    private static void ApplyOverrides(VmConfig config, SnapshotLoadParams p)
    {
        foreach (var (iface, dev) in p.NetworkOverrides)
        {
            var list = config.NetworkInterfaces ?? [];
            int i = list.FindIndex(e => e.TryGetProperty("iface_id", out var id) && id.GetString() == iface);
            if (i < 0) throw new SnapshotException(FromFile + "Unknown Network Device.");
            list[i] = WithField(list[i], "host_dev_name", dev);
        }
        if (p.VsockUdsPath is { } uds)
        {
            if (ConfigLoader.Present(config.Vsock) is not { } vs) throw new SnapshotException(FromFile + "Unknown Vsock Device.");
            config.Vsock = WithField(vs, "uds_path", uds);
        }
    }

    private static JsonElement WithField(JsonElement e, string name, string value)
    {
        var node = JsonNode.Parse(e.GetRawText())!.AsObject();
        node[name] = value;
        using var doc = JsonDocument.Parse(node.ToJsonString());
        return doc.RootElement.Clone();
    }

    /// <summary>Guest RAM mapped from the memory file (File backend); nothing is built if it fails.</summary>
    private static GuestMemory MemoryFromFile(string path, VmConfig config, HotplugLayout? hotplug)
    {
        CheckMemoryFile(path, config, hotplug);
        try { return GuestMemory.CreateFromFile(MemoryLayout.RamRanges(checked((ulong)config.MachineConfig!.MemSizeMib << 20)), path, hotplug); }
        catch (Exception e) when (e is IOException or SysException or ArgumentException or UnauthorizedAccessException)
        {
            throw new SnapshotException(Restore + $"Failed to load guest memory: Error creating guest memory from file: Failed to load guest memory: {Describe(e)}");
        }
    }

    /// <summary>
    /// Anonymous guest RAM served by the page-fault handler listening on <paramref name="socketPath"/> (Uffd backend):
    /// Firecracker's guest_memory_from_uffd. Nothing is built if it fails, and nothing is left open.
    /// </summary>
    private static GuestMemory MemoryFromUffd(string socketPath, VmConfig config, UffdSource source, HotplugLayout? hotplug)
    {
        const string FromUffd = Restore + "Failed to load guest memory: Error creating guest memory from uffd: ";
        var mc = config.MachineConfig!;
        try
        {
            return GuestMemory.CreateForUffd(MemoryLayout.RamRanges(checked((ulong)mc.MemSizeMib << 20)), socketPath, source,
                ConfigLoader.HugePagesOf(mc), hotplug);
        }
        catch (GuestMemoryUffdException e) { throw new SnapshotException(FromUffd + e.Message); }
        catch (Exception e) when (e is SysException or ArgumentException)
        {
            throw new SnapshotException(FromUffd + $"Failed to restore guest memory: {e.Message}");
        }
    }

    /// <summary>The memory file must exist and be exactly guest RAM's size (boot RAM, then any hotplug area); checked before anything is built.</summary>
    private static void CheckMemoryFile(string path, VmConfig config, HotplugLayout? hotplug)
    {
        ulong want = checked(((ulong)config.MachineConfig!.MemSizeMib << 20) + (hotplug?.Size ?? 0));
        long have;
        try
        {
            var info = new FileInfo(path);
            if (!info.Exists) throw new FileNotFoundException();
            have = info.Length;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new SnapshotException(Restore + $"Failed to load guest memory: Error creating guest memory from file: Failed to load guest memory: {IoText.Of(e, path)}");
        }
        if ((ulong)have != want)
            throw new SnapshotException(Restore + $"Failed to load guest memory: Error creating guest memory from file: Failed to restore guest memory: the memory file {path} holds {have} bytes, the snapshot's guest memory is {want} bytes.");
    }

    /// <summary>VM, vCPUs, then devices; all on this thread, before any vCPU thread exists.</summary>
    /// <summary>
    /// The restored guest's pmem driver holds the windows it read before the snapshot: the backing files, mapped again
    /// from the saved configuration, must give the same windows (Firecracker's PmemError::RestoredSizeMismatch).
    /// </summary>
    private static void RestorePmemWindows(SnapshotFile file, Vmm vmm)
    {
        var pmems = vmm.Devices.Pmems;
        if (!file.Has(SnapshotSections.Pmem))
        {
            if (pmems.Count > 0) throw new SnapshotFormatException("The snapshot holds no pmem windows, its configuration builds pmem devices.");
            return;
        }
        var r = file.Open(SnapshotSections.Pmem);
        int n = r.Count(64);
        if (n != pmems.Count) throw new SnapshotFormatException($"The snapshot holds {n} pmem devices, its configuration builds {pmems.Count}.");
        foreach (var p in pmems)
        {
            ulong start = r.U64(), size = r.U64();
            if (size != p.WindowSize)
                throw new InvalidOperationException($"Pmem: Restored pmem size {size} does not match backing file mapping size {p.WindowSize}");
            if (start != p.WindowStart)
                throw new SnapshotFormatException($"pmem \"{p.Id}\" was at 0x{start:x}, its configuration places it at 0x{p.WindowStart:x}.");
        }
        r.ExpectEnd();
    }

    private static void ApplyState(SnapshotFile file, VmConfig config, Vmm vmm, bool clockRealtime, MmdsStore? mmds, PciSnapshotState? pci)
    {
        // The build follows the snapshot's transport; a builder that did not would bring the devices back on another
        // transport than the one the guest's drivers use.
        if ((pci != null) != (vmm.Devices.Pci != null))
            throw new InvalidOperationException(pci != null ? "The snapshot's devices are virtio-pci, the VM was built without a PCI segment."
                : "The snapshot's devices are virtio-mmio, the VM was built with a PCI segment.");
        VmStateCodec.Restore(vmm.Vm, file.Open(SnapshotSections.Vm), clockRealtime);
        // Hotplugged memory back in KVM before any device state that may point into it (a queue, a buffer).
        VirtioMemStateCodec.Restore(file, vmm);
        for (int i = 0; i < vmm.Vcpus.Count; i++)
            VcpuStateCodec.Restore(vmm.Vcpus[i].KvmVcpu!, file.Open(SnapshotSections.Vcpu(i)));
        vmm.Serial.RestoreState(file.Open(SnapshotSections.Serial));
        vmm.I8042.RestoreState(file.Open(SnapshotSections.I8042));
        var transports = vmm.Devices.Transports;
        int saved = file.SectionNames("virtio/").Count();
        if (saved != transports.Count)
            throw new SnapshotFormatException($"The snapshot holds {saved} virtio devices, its configuration builds {transports.Count}.");
        for (int i = 0; i < transports.Count; i++) transports[i].RestoreState(file.Open(SnapshotSections.Virtio(i)));
        // After the transports (a live device is active again). A snapshot without the section (written before Flint
        // saved it) leaves the device as its configuration built it.
        for (int i = 0; i < transports.Count; i++)
            if (file.Has(SnapshotSections.Runtime(i)))
                transports[i].Device.RestoreRuntime(file.Open(SnapshotSections.Runtime(i)));
        // The PCI functions (none in a virtio-mmio snapshot: transports above is then the whole list).
        if (pci != null) PciStateCodec.Restore(pci, vmm.Devices.Pci!);
        RestorePmemWindows(file, vmm);
        if (mmds != null && file.Has(SnapshotSections.Mmds))
        {
            var r = file.Open(SnapshotSections.Mmds);
            string json = r.RequiredString(SnapshotFormat.MaxFileSize);
            r.ExpectEnd();
            mmds.Put(json);
        }
        // The vsock connections lived in the old process: the TRANSPORT_RESET event posted at create is in the restored
        // memory; its rx gate comes back and the event's interrupt is raised again (Firecracker's kick on resume).
        if (vmm.Devices.Vsock is { } vsock)
        {
            bool pending = false;
            if (file.Has(SnapshotSections.Vsock))
            {
                var r = file.Open(SnapshotSections.Vsock);
                pending = r.Bool();
                r.ExpectEnd();
            }
            vsock.OnRestored(pending);
        }
        // A new VM generation: VMGenID's new ID and VMClock's bumped counters, each with its interrupt.
        AcpiStateCodec.Restore(file, vmm.Acpi, vmm.Memory);
        // A kick the old process had not served yet died with it: ring every live queue once, so the devices look at
        // their rings (a queue with nothing new does nothing).
        foreach (var t in transports) ReplayKicks(t.Device, t.QueueEvents);
        if (vmm.Devices.Pci is { } segment)
            foreach (var t in segment.Transports) ReplayKicks(t.Device, t.QueueEvents);
    }

    private static void ReplayKicks(IVirtioDevice device, EventFd[] queueEvents)
    {
        if (!device.IsActivated) return;
        for (int q = 0; q < queueEvents.Length; q++)
            if (device.ReplaysKickAfterRestore(q)) queueEvents[q].Write(1);
    }
}
