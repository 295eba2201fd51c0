namespace Flint.Arch.X86.Acpi;

/// <summary>A virtio-mmio device as the DSDT describes it: its 4 KiB window and legacy GSI.</summary>
public readonly record struct VirtioMmioAcpi(ulong Address, ulong Length, uint Gsi);

/// <summary>A device whose data lives in guest memory at <paramref name="Address"/> and that signals on <paramref name="Gsi"/>.</summary>
public readonly record struct AcpiMemoryDevice(ulong Address, uint Gsi);

/// <summary>
/// The DSDT's definition block, in Firecracker's order (device_manager.append_aml_bytes, then the arch part): the
/// virtio-mmio devices ("Vnnn", LNRO0005, nnn = GSI - 5) or with PCI the host bridge (_SB_.PC00), VMGenID (_SB_.VGEN), VMClock (_SB_.VCLK), the Generic Event
/// Device that turns their GSIs into Notify(0x80) (_SB_.GED_, ACPI0013), then COM1 (PNP0501) and the i8042 (PNP0303).
/// </summary>
public static class DsdtDevices
{
    public const uint Com1Gsi = 4, KeyboardGsi = 1;
    public const ushort Com1Port = 0x3f8, I8042DataPort = 0x60, I8042CommandPort = 0x64;
    public const byte Com1PortCount = 8;
    /// <summary>Notify value for "the device's data changed" (ACPI 6.5 table 5.207: 0x80 device-specific).</summary>
    public const byte NotifyDeviceSpecific = 0x80;

    /// <param name="pci">The PCI segment with --enable-pci: its host bridge (<see cref="PciRootBridge"/>) takes the
    /// virtio devices' place, as Firecracker's device manager writes either its MMIO devices or its PCI segment.</param>
    public static byte[] Build(IReadOnlyList<VirtioMmioAcpi> virtio, AcpiMemoryDevice vmGenId, AcpiMemoryDevice vmClock, ulong vmClockSize,
        PciSegmentInfo? pci = null)
    {
        var parts = new List<byte[]>();
        if (pci != null) parts.Add(PciRootBridge.Build(pci));
        foreach (var d in virtio) parts.Add(VirtioMmio(d));
        parts.Add(VmGenId(vmGenId.Address));
        parts.Add(VmClock(vmClock.Address, vmClockSize));
        parts.Add(GenericEventDevice(vmGenId.Gsi, vmClock.Gsi));
        parts.Add(Com1());
        parts.Add(Ps2());
        return Aml.Concat([.. parts]);
    }

    /// <summary>Firecracker's add_virtio_aml: _HID "LNRO0005" (Linux's virtio-mmio ACPI id), _UID, _CCA 1 (coherent DMA).</summary>
    public static byte[] VirtioMmio(VirtioMmioAcpi d)
    {
        if (d.Gsi < Layout.FirstVirtioIrq || d.Gsi > Layout.LastVirtioIrq)
            throw new ArgumentOutOfRangeException(nameof(d), $"virtio-mmio GSI {d.Gsi} outside {Layout.FirstVirtioIrq}-{Layout.LastVirtioIrq}");
        uint id = d.Gsi - Layout.FirstVirtioIrq;
        return Aml.Device($"V{id:D3}",
            Aml.Name("_HID", Aml.String("LNRO0005")),
            Aml.Name("_UID", Aml.DWord(id)),
            Aml.Name("_CCA", Aml.One),
            Aml.Name("_CRS", Aml.ResourceTemplate(
                Aml.Memory32Fixed(true, checked((uint)d.Address), checked((uint)d.Length)),
                Aml.Interrupt(true, true, false, false, d.Gsi))));
    }

    /// <summary>
    /// The VM Generation ID device (Microsoft's "Virtual Machine Generation ID" spec): _CID "VM_Gen_Counter" is what
    /// guests match on; ADDR is a package of the low and high halves of the 16-byte ID's guest-physical address.
    /// </summary>
    public static byte[] VmGenId(ulong address) => Aml.Device("_SB_.VGEN",
        Aml.Name("_HID", Aml.String("VMGENCTR")),
        Aml.Name("_CID", Aml.String("VM_Gen_Counter")),
        Aml.Name("_DDN", Aml.String("VM_Gen_Counter")),
        Aml.Name("ADDR", Aml.Package(Aml.DWord((uint)address), Aml.DWord((uint)(address >> 32)))));

    /// <summary>VMClock (Linux's ptp_vmclock, "AMZNC10C"/"VMCLOCK"): its page as a cacheable read-only memory range.</summary>
    public static byte[] VmClock(ulong address, ulong size) => Aml.Device("_SB_.VCLK",
        Aml.Name("_HID", Aml.String("AMZNC10C")),
        Aml.Name("_CID", Aml.String("VMCLOCK")),
        Aml.Name("_DDN", Aml.String("VMCLOCK")),
        Aml.Method("_STA", 0, false, Aml.Return(Aml.Byte(0x0f))),
        Aml.Name("_CRS", Aml.ResourceTemplate(Aml.QWordMemory(cacheable: true, readWrite: false, address, address + size - 1))));

    /// <summary>
    /// The Generic Event Device of hardware-reduced ACPI: the OS runs _EVT with the GSI that fired, and _EVT notifies
    /// the device behind it. Both GSIs edge-triggered, active high, exclusive, as Firecracker's.
    /// </summary>
    public static byte[] GenericEventDevice(uint vmGenIdGsi, uint vmClockGsi) => Aml.Device("_SB_.GED_",
        Aml.Name("_HID", Aml.String("ACPI0013")),
        Aml.Name("_CRS", Aml.ResourceTemplate(
            Aml.Interrupt(true, true, false, false, vmGenIdGsi),
            Aml.Interrupt(true, true, false, false, vmClockGsi))),
        Aml.Method("_EVT", 1, true,
            Aml.If(Aml.Equal(Aml.Arg(0), Aml.Byte(checked((byte)vmGenIdGsi))), Aml.Notify("\\_SB_.VGEN", Aml.Byte(NotifyDeviceSpecific))),
            Aml.If(Aml.Equal(Aml.Arg(0), Aml.Byte(checked((byte)vmClockGsi))), Aml.Notify("\\_SB_.VCLK", Aml.Byte(NotifyDeviceSpecific)))));

    public static byte[] Com1() => Aml.Device("_SB_.COM1",
        Aml.Name("_HID", Aml.EisaId("PNP0501")),
        Aml.Name("_UID", Aml.Byte(0)),
        Aml.Name("_DDN", Aml.String("COM1")),
        Aml.Name("_CRS", Aml.ResourceTemplate(
            Aml.Interrupt(true, true, false, false, Com1Gsi),
            Aml.Io(Com1Port, Com1Port, 1, Com1PortCount))));

    /// <summary>The i8042 with a data port and (as Firecracker: "fake a command port so Linux stops complaining") 0x64.</summary>
    public static byte[] Ps2() => Aml.Device("_SB_.PS2_",
        Aml.Name("_HID", Aml.EisaId("PNP0303")),
        Aml.Method("_STA", 0, false, Aml.Return(Aml.Byte(0x0f))),
        Aml.Name("_CRS", Aml.ResourceTemplate(
            Aml.Io(I8042DataPort, I8042DataPort, 1, 1),
            Aml.Io(I8042CommandPort, I8042CommandPort, 1, 1),
            Aml.Interrupt(true, true, false, false, KeyboardGsi))));
}
