namespace Flint.Arch.X86;

/// <summary>
/// Fixed guest-physical addresses of the x86_64 machine model. They are Firecracker's, so guests, tools and
/// habits built around Firecracker (e.g. the boot timer address baked into test guests) keep working.
/// Everything below <see cref="HighMemStart"/> is boot scaffolding the VMM writes before the first vCPU runs.
/// </summary>
public static class Layout
{
    /// <summary>Boot GDT: 4 descriptors (null, code, data, TSS) = 32 bytes, right below the IDT.</summary>
    public const ulong GdtStart = 0x500;
    /// <summary>Boot IDT: one zeroed 8-byte gate, limit 7; the kernel installs its own before enabling interrupts.</summary>
    public const ulong IdtStart = 0x520;
    /// <summary>PVH hvm_start_info; its memory map and module list follow it inside the same page.</summary>
    public const ulong PvhInfoStart = 0x6000;
    /// <summary>Linux zero page (struct boot_params), passed in rsi for the 64-bit boot protocol.</summary>
    public const ulong ZeroPageStart = 0x7000;
    /// <summary>Initial rsp/rbp for the 64-bit boot protocol; grows down below the page tables.</summary>
    public const ulong BootStackPointer = 0x8ff0;
    /// <summary>Identity page tables for long-mode entry: PML4 -> PDPTE -> PDE (2 MiB pages, first 1 GiB).</summary>
    public const ulong Pml4Start = 0x9000;
    public const ulong PdpteStart = 0xa000;
    public const ulong PdeStart = 0xb000;
    /// <summary>Kernel command line, NUL terminated.</summary>
    public const ulong CmdlineStart = 0x20000;
    /// <summary>Command line limit including the terminating NUL (x86 COMMAND_LINE_SIZE).</summary>
    public const int CmdlineMaxSize = 2048;
    /// <summary>
    /// MP table area: the floating pointer sits at the start of the last KiB of base memory (639 KiB), one of the
    /// places the MP spec tells the OS to scan. The e820 map reserves from here to 1 MiB.
    /// </summary>
    public const ulong MpTableStart = 0x9fc00;
    public const ulong MpTableEnd = 0xe0000;
    /// <summary>
    /// Firecracker's "system memory" [SYSTEM_MEM_START, RSDP_ADDR) = [0x9fc00, 0xe0000): the MP table first, the ACPI
    /// tables right after it (allocated upwards), VMGenID's 16 bytes and VMClock's page at its top (allocated
    /// downwards). The e820 map reserves it (and the rest up to 1 MiB), so the guest never uses it as RAM.
    /// </summary>
    public const ulong SystemMemStart = MpTableStart;
    public const ulong SystemMemEnd = MpTableEnd;
    /// <summary>The RSDP, where Firecracker puts it (RSDP_ADDR) and where the ACPI spec tells a BIOS-less OS to scan
    /// (the 0xE0000-0xFFFFF window); also handed over in boot_params.acpi_rsdp_addr and PVH's rsdp_paddr.</summary>
    public const ulong RsdpAddress = 0xe0000;
    /// <summary>VMGenID's 16-byte generation ID: the last 8-aligned 16 bytes of system memory (Firecracker's LastMatch).</summary>
    public const ulong VmGenIdAddress = SystemMemEnd - VmGenIdSize;
    public const ulong VmGenIdSize = 16;
    /// <summary>VMClock's page: the last 4 KiB-aligned page of system memory below VMGenID (Firecracker's LastMatch).</summary>
    public const ulong VmClockAddress = (VmGenIdAddress - VmClockSize) & ~(VmClockSize - 1);
    public const ulong VmClockSize = 0x1000;
    /// <summary>Start of "high" memory (HIMEM_START): kernels load here or above.</summary>
    public const ulong HighMemStart = 0x100000;
    /// <summary>The 32-bit MMIO gap, 3-4 GiB: no RAM there; RAM beyond 3 GiB is moved above 4 GiB.</summary>
    public const ulong MmioGapStart = 0xC000_0000;
    public const ulong MmioGapSize = 1UL << 30;
    public const ulong MmioGapEnd = MmioGapStart + MmioGapSize;
    /// <summary>Boot timer device (guest writes byte 123 when it reaches init).</summary>
    public const ulong BootTimerAddress = 0xC000_0000;
    /// <summary>First virtio-mmio slot; slots are 4 KiB apart.</summary>
    public const ulong VirtioMmioStart = 0xC000_1000;
    public const ulong VirtioMmioSlotSize = 0x1000;
    /// <summary>Legacy GSIs for virtio-mmio devices: 5..23 (IRQ 1 = i8042, 4 = serial are taken).</summary>
    public const uint FirstVirtioIrq = 5;
    public const uint LastVirtioIrq = 23;
    public const int VirtioMmioSlotCount = (int)(LastVirtioIrq - FirstVirtioIrq + 1);
    /// <summary>KVM_SET_TSS_ADDR: three pages KVM needs (on Intel) just below the 4 GiB BIOS area.</summary>
    public const ulong TssAddress = 0xfffb_d000;
    /// <summary>KVM_SET_IDENTITY_MAP_ADDR: the one page Intel KVM uses for real-mode paging; inside the MMIO gap, clear of RAM and devices.</summary>
    public const ulong IdentityMapAddress = 0xfeff_c000;
    /// <summary>Default local APIC and IOAPIC MMIO bases (advertised in the MP table).</summary>
    public const uint LapicAddress = 0xfee0_0000;
    public const uint IoapicAddress = 0xfec0_0000;
    /// <summary>
    /// Firecracker's 64-bit MMIO gap (MMIO64_MEM_START/SIZE, 256-512 GiB) and the device area past it
    /// (FIRST_ADDR_PAST_64BITS_MMIO, 512 GiB long), where Firecracker's resource allocator places virtio-pmem windows
    /// (first fit, 2 MiB aligned, in configuration order). Not RAM and not in the E820 map: the guest learns of a
    /// pmem window from the device's config space only.
    /// </summary>
    public const ulong Mmio64Start = 256UL << 30;
    public const ulong Mmio64Size = 256UL << 30;
    public const ulong PastMmio64Start = Mmio64Start + Mmio64Size;
    public const ulong PastMmio64Size = 512UL << 30;
    /// <summary>Number of IOAPIC pins KVM's in-kernel IOAPIC has.</summary>
    public const int IoapicPins = 24;
    /// <summary>
    /// PCIe ECAM ("MMCONFIG", --enable-pci): Firecracker dedicates the last 256 MiB of the 32-bit MMIO gap below the
    /// IOAPIC (PCI_MMCONFIG_START = IOAPIC_ADDR - 256 MiB) and maps 1 MiB of it per segment (one bus). Firecracker's
    /// e820 marks the 256 MiB reserved; an ACPI MCFG entry points the guest at it.
    /// </summary>
    public const ulong PciMmconfigSize = 256UL << 20;
    public const ulong PciMmconfigStart = IoapicAddress - PciMmconfigSize;
    /// <summary>
    /// The 64-bit MMIO window for PCI BARs (Firecracker's MMIO64_MEM_START/SIZE: 256 GiB at 256 GiB). Guest RAM never
    /// reaches it (Flint's memory limit is far below), so BARs placed here cannot overlap RAM.
    /// </summary>
    public const ulong PciMmio64Start = 256UL << 30;
    public const ulong PciMmio64Size = 256UL << 30;

    /// <summary>
    /// The virtio-mem hotplug area: Firecracker's past_mmio64_memory window (layout.rs FIRST_ADDR_PAST_64BITS_MMIO and
    /// PAST_64BITS_MMIO_SIZE): from 512 GiB, 512 GiB long, past its 256 GiB 64-bit MMIO window, so a VM's hotpluggable
    /// memory sits at the same guest address under both VMMs. Not in E820: the guest learns of it from the device.
    /// Firecracker allocates it before the pmem windows, which then start past it (VmBuilder.PlacePmemWindows).
    /// </summary>
    public const ulong HotplugMemoryStart = 512UL << 30;
    public const ulong HotplugMemorySize = 512UL << 30;

    /// <summary>Guest-physical base of virtio-mmio slot <paramref name="slot"/> (0-based).</summary>
    public static ulong VirtioMmioAddress(int slot)
    {
        CheckSlot(slot);
        return VirtioMmioStart + (ulong)slot * VirtioMmioSlotSize;
    }

    /// <summary>The GSI of virtio-mmio slot <paramref name="slot"/> (0-based).</summary>
    public static uint VirtioIrq(int slot)
    {
        CheckSlot(slot);
        return FirstVirtioIrq + (uint)slot;
    }

    private static void CheckSlot(int slot)
    {
        if ((uint)slot >= VirtioMmioSlotCount)
            throw new ArgumentOutOfRangeException(nameof(slot),
                $"virtio-mmio slot {slot} out of range: only {VirtioMmioSlotCount} devices (IRQs {FirstVirtioIrq}-{LastVirtioIrq}) are available");
    }
}
