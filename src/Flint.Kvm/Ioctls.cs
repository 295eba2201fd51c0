namespace Flint.Kvm;

/// <summary>KVM ioctl request numbers, encoded as &lt;linux/kvm.h&gt; does with _IO/_IOR/_IOW/_IOWR.</summary>
public static class Ioctls
{
    private const uint KVMIO = 0xAE;
    private const uint None = 0, Write = 1, Read = 2;

    private static nuint Io(uint dir, uint nr, uint size) => (nuint)((dir << 30) | (size << 16) | (KVMIO << 8) | nr);
    private static nuint IO(uint nr) => Io(None, nr, 0);
    private static nuint IOW(uint nr, uint size) => Io(Write, nr, size);
    private static nuint IOR(uint nr, uint size) => Io(Read, nr, size);
    private static nuint IOWR(uint nr, uint size) => Io(Read | Write, nr, size);

    // /dev/kvm
    public static readonly nuint KVM_GET_API_VERSION = IO(0x00);
    public static readonly nuint KVM_CREATE_VM = IO(0x01);
    public static readonly nuint KVM_GET_MSR_INDEX_LIST = IOWR(0x02, 4);
    public static readonly nuint KVM_CHECK_EXTENSION = IO(0x03);
    public static readonly nuint KVM_GET_VCPU_MMAP_SIZE = IO(0x04);
    public static readonly nuint KVM_GET_SUPPORTED_CPUID = IOWR(0x05, 8);

    // VM fd
    public static readonly nuint KVM_CREATE_VCPU = IO(0x41);
    public static readonly nuint KVM_GET_DIRTY_LOG = IOW(0x42, 16);
    public static readonly nuint KVM_SET_USER_MEMORY_REGION = IOW(0x46, 32);
    public static readonly nuint KVM_SET_TSS_ADDR = IO(0x47);
    public static readonly nuint KVM_SET_IDENTITY_MAP_ADDR = IOW(0x48, 8);
    public static readonly nuint KVM_CREATE_IRQCHIP = IO(0x60);
    public static readonly nuint KVM_IRQ_LINE = IOW(0x61, 8);
    public static readonly nuint KVM_SET_GSI_ROUTING = IOW(0x6a, 8);
    public static readonly nuint KVM_IRQFD = IOW(0x76, 32);
    public static readonly nuint KVM_CREATE_PIT2 = IOW(0x77, 64);
    public static readonly nuint KVM_IOEVENTFD = IOW(0x79, 64);

    // vCPU fd
    public static readonly nuint KVM_RUN = IO(0x80);
    public static readonly nuint KVM_GET_REGS = IOR(0x81, 144);
    public static readonly nuint KVM_SET_REGS = IOW(0x82, 144);
    public static readonly nuint KVM_GET_SREGS = IOR(0x83, 312);
    public static readonly nuint KVM_SET_SREGS = IOW(0x84, 312);
    public static readonly nuint KVM_GET_MSRS = IOWR(0x88, 8);
    public static readonly nuint KVM_SET_MSRS = IOW(0x89, 8);
    public static readonly nuint KVM_GET_FPU = IOR(0x8c, 416);
    public static readonly nuint KVM_SET_FPU = IOW(0x8d, 416);
    public static readonly nuint KVM_GET_LAPIC = IOR(0x8e, 1024);
    public static readonly nuint KVM_SET_LAPIC = IOW(0x8f, 1024);
    public static readonly nuint KVM_SET_CPUID2 = IOW(0x90, 8);
    public static readonly nuint KVM_GET_CPUID2 = IOWR(0x91, 8);
    public static readonly nuint KVM_GET_MP_STATE = IOR(0x98, 4);
    public static readonly nuint KVM_SET_MP_STATE = IOW(0x99, 4);
    public static readonly nuint KVM_GET_TSC_KHZ = IO(0xa3);
    public static readonly nuint KVM_KVMCLOCK_CTRL = IO(0xad);

    // Capabilities (KVM_CHECK_EXTENSION arguments)
    public const int KVM_CAP_IRQCHIP = 0, KVM_CAP_HLT = 1, KVM_CAP_USER_MEMORY = 3, KVM_CAP_SET_TSS_ADDR = 4,
        KVM_CAP_EXT_CPUID = 7, KVM_CAP_NR_VCPUS = 9, KVM_CAP_NR_MEMSLOTS = 10, KVM_CAP_PIT2 = 33,
        KVM_CAP_IOEVENTFD = 36, KVM_CAP_IRQFD = 32, KVM_CAP_IRQ_ROUTING = 25, KVM_CAP_MAX_VCPUS = 66, KVM_CAP_TSC_DEADLINE_TIMER = 72,
        KVM_CAP_IMMEDIATE_EXIT = 136;

    public const uint KVM_MEM_LOG_DIRTY_PAGES = 1;
    /// <summary>A slot the guest may only read: its stores exit as KVM_EXIT_MMIO (read-only virtio-pmem).</summary>
    public const uint KVM_MEM_READONLY = 2;
    public const uint KVM_PIT_SPEAKER_DUMMY = 1;
    public const uint KVM_IOEVENTFD_FLAG_DATAMATCH = 1, KVM_IOEVENTFD_FLAG_PIO = 2, KVM_IOEVENTFD_FLAG_DEASSIGN = 4;
    public const uint KVM_IRQFD_FLAG_DEASSIGN = 1;
    public const int KVM_API_VERSION = 12;
}
