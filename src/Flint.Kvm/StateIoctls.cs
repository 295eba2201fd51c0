namespace Flint.Kvm;

/// <summary>
/// The KVM ioctls that save and restore a vCPU's and a VM's state for snapshots (&lt;linux/kvm.h&gt;, x86_64). The
/// state blocks are opaque to Flint: they go to the snapshot file as KVM gave them and back the same way, so each
/// one only needs its exact size, which the ioctl number encodes (and StateIoctlTests checks).
/// </summary>
public static class StateIoctls
{
    private const uint KVMIO = 0xAE;
    private static nuint Io(uint dir, uint nr, uint size) => (nuint)((dir << 30) | (size << 16) | (KVMIO << 8) | nr);
    private static nuint IO(uint nr) => Io(0, nr, 0);
    private static nuint IOW(uint nr, uint size) => Io(1, nr, size);
    private static nuint IOR(uint nr, uint size) => Io(2, nr, size);
    private static nuint IOWR(uint nr, uint size) => Io(3, nr, size);

    /// <summary>sizeof(struct kvm_vcpu_events), kvm_debugregs, kvm_xsave, kvm_xcrs, kvm_irqchip, kvm_pit_state2, kvm_clock_data.</summary>
    public const int VcpuEventsSize = 64, DebugRegsSize = 128, XsaveSize = 4096, XcrsSize = 392,
        IrqchipSize = 520, Pit2Size = 112, ClockDataSize = 48;

    // vCPU fd
    public static readonly nuint KVM_GET_VCPU_EVENTS = IOR(0x9f, VcpuEventsSize);
    public static readonly nuint KVM_SET_VCPU_EVENTS = IOW(0xa0, VcpuEventsSize);
    public static readonly nuint KVM_GET_DEBUGREGS = IOR(0xa1, DebugRegsSize);
    public static readonly nuint KVM_SET_DEBUGREGS = IOW(0xa2, DebugRegsSize);
    public static readonly nuint KVM_GET_XSAVE = IOR(0xa4, XsaveSize);
    public static readonly nuint KVM_SET_XSAVE = IOW(0xa5, XsaveSize);
    public static readonly nuint KVM_GET_XSAVE2 = IOR(0xcf, XsaveSize);
    public static readonly nuint KVM_GET_XCRS = IOR(0xa6, XcrsSize);
    public static readonly nuint KVM_SET_XCRS = IOW(0xa7, XcrsSize);
    public static readonly nuint KVM_SET_TSC_KHZ = IO(0xa2);

    // VM fd
    public static readonly nuint KVM_GET_IRQCHIP = IOWR(0x62, IrqchipSize);
    public static readonly nuint KVM_SET_IRQCHIP = IOR(0x63, IrqchipSize); // sic: <linux/kvm.h> declares it _IOR
    public static readonly nuint KVM_GET_PIT2 = IOR(0x9f, Pit2Size);
    public static readonly nuint KVM_SET_PIT2 = IOW(0xa0, Pit2Size);
    public static readonly nuint KVM_GET_CLOCK = IOR(0x7c, ClockDataSize);
    public static readonly nuint KVM_SET_CLOCK = IOW(0x7b, ClockDataSize);

    public const int KVM_CAP_ADJUST_CLOCK = 39, KVM_CAP_XSAVE = 55, KVM_CAP_XCRS = 56, KVM_CAP_DEBUGREGS = 50,
        KVM_CAP_VCPU_EVENTS = 41, KVM_CAP_GET_TSC_KHZ = 61, KVM_CAP_TSC_CONTROL = 60, KVM_CAP_XSAVE2 = 208;

    /// <summary>kvm_irqchip.chip_id: the two 8259s and the IOAPIC.</summary>
    public const uint KVM_IRQCHIP_PIC_MASTER = 0, KVM_IRQCHIP_PIC_SLAVE = 1, KVM_IRQCHIP_IOAPIC = 2;

    /// <summary>kvm_clock_data.flags.</summary>
    public const uint KVM_CLOCK_TSC_STABLE = 2, KVM_CLOCK_REALTIME = 4, KVM_CLOCK_HOST_TSC = 8;
}
