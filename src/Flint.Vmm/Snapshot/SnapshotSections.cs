namespace Flint.Vmm.Snapshot;

/// <summary>The section names of a Flint snapshot (docs/snapshots.md lists what each holds).</summary>
public static class SnapshotSections
{
    public const string Config = "config", Memory = "memory", Vm = "vm", Serial = "serial", I8042 = "i8042", Mmds = "mmds";
    /// <summary>Full or Diff, and the page size (<see cref="Flint.Snapshot.MemoryFileInfo"/>).</summary>
    public const string MemoryFile = Flint.Snapshot.MemoryFileInfo.SectionName;
    /// <summary>virtio-vsock's rx gate: a TRANSPORT_RESET event waits for the guest's acknowledgement (one bool).</summary>
    public const string Vsock = "vsock";
    /// <summary>VMGenID (GSI, address, ID) and VMClock (GSI, address, vmclock_abi): <see cref="AcpiStateCodec"/>.</summary>
    public const string Acpi = "acpi";
    /// <summary>virtio-pmem windows: a count, then each device's guest-physical start and size (Firecracker's saved
    /// ConfigSpace), checked at restore against what the backing files map to now.</summary>
    public const string Pmem = "pmem";
    /// <summary>--enable-pci: the host bridge and every virtio-pci function (<see cref="PciStateCodec"/>); absent in a
    /// virtio-mmio snapshot.</summary>
    public const string Pci = "pci";
    /// <summary>virtio-mem: the hotplug area's layout and the device's plugged blocks (<see cref="VirtioMemStateCodec"/>).</summary>
    public const string VirtioMem = Flint.Snapshot.HotplugMemoryState.SectionName;
    public static string Vcpu(int i) => $"vcpu/{i}";
    public static string Virtio(int slot) => $"virtio/{slot}";
    /// <summary>Slot N's device state beyond its transport (rate limiter buckets, the balloon's): <see cref="Flint.Devices.Virtio.IDeviceRuntimeState"/>.</summary>
    public static string Runtime(int slot) => $"runtime/{slot}";
}
