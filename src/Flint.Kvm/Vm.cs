using Flint.Sys;

namespace Flint.Kvm;

/// <summary>A KVM VM fd: memory slots, in-kernel irqchip and PIT, irqfd/ioeventfd, vCPU creation.</summary>
// SAFETY: ioctls get pointers to stack structs of the kernel's layout; memory slots get host addresses of mappings that outlive the VM.
public sealed unsafe partial class Vm : KvmFd, IPciVm
{
    private readonly int _vcpuMmapSize;

    internal Vm(int fd, int vcpuMmapSize) : base(fd) => _vcpuMmapSize = vcpuMmapSize;

    /// <param name="readOnly">KVM_MEM_READONLY: guest stores into the slot exit to the VMM as MMIO writes.</param>
    public void SetUserMemoryRegion(uint slot, ulong guestPhysAddr, ulong size, nint hostAddr, bool logDirty = false, bool readOnly = false)
    {
        var r = new KvmUserspaceMemoryRegion
        {
            Slot = slot,
            Flags = (logDirty ? Ioctls.KVM_MEM_LOG_DIRTY_PAGES : 0) | (readOnly ? Ioctls.KVM_MEM_READONLY : 0),
            GuestPhysAddr = guestPhysAddr,
            MemorySize = size,
            UserspaceAddr = (ulong)hostAddr,
        };
        Ioctl(Ioctls.KVM_SET_USER_MEMORY_REGION, &r, "KVM_SET_USER_MEMORY_REGION");
    }

    public void SetTssAddress(ulong addr) => IoctlVal(Ioctls.KVM_SET_TSS_ADDR, (nuint)addr, "KVM_SET_TSS_ADDR");

    public void SetIdentityMapAddress(ulong addr)
    {
        ulong a = addr;
        Ioctl(Ioctls.KVM_SET_IDENTITY_MAP_ADDR, &a, "KVM_SET_IDENTITY_MAP_ADDR");
    }

    public void CreateIrqchip() => IoctlVal(Ioctls.KVM_CREATE_IRQCHIP, 0, "KVM_CREATE_IRQCHIP");

    public void CreatePit2()
    {
        // The speaker port (0x61) is emulated as a dummy, as Firecracker does, so no exit reaches us for it.
        var cfg = new KvmPitConfig { Flags = Ioctls.KVM_PIT_SPEAKER_DUMMY };
        Ioctl(Ioctls.KVM_CREATE_PIT2, &cfg, "KVM_CREATE_PIT2");
    }

    /// <summary>Binds an eventfd to a GSI: a write to the eventfd injects the interrupt without a VMM exit.</summary>
    public void RegisterIrqfd(EventFd fd, uint gsi)
    {
        var r = new KvmIrqfd { Fd = (uint)fd.Fd, Gsi = gsi };
        Ioctl(Ioctls.KVM_IRQFD, &r, "KVM_IRQFD");
    }

    /// <summary>Unbinds an eventfd bound by <see cref="RegisterIrqfd"/> (PCI hot-unplug gives its vectors back).</summary>
    public void UnregisterIrqfd(EventFd fd, uint gsi)
    {
        var r = new KvmIrqfd { Fd = (uint)fd.Fd, Gsi = gsi, Flags = Ioctls.KVM_IRQFD_FLAG_DEASSIGN };
        Ioctl(Ioctls.KVM_IRQFD, &r, "KVM_IRQFD");
    }

    public void SetIrqLine(uint irq, bool level)
    {
        var r = new KvmIrqLevel { Irq = irq, Level = level ? 1u : 0u };
        Ioctl(Ioctls.KVM_IRQ_LINE, &r, "KVM_IRQ_LINE");
    }

    /// <summary>
    /// Binds an eventfd to a guest write of <paramref name="len"/> bytes at <paramref name="addr"/> (MMIO, or PIO when
    /// <paramref name="pio"/>), optionally only when the written value equals <paramref name="datamatch"/>.
    /// </summary>
    public void RegisterIoeventfd(EventFd fd, ulong addr, uint len, ulong? datamatch, bool pio = false)
    {
        var r = new KvmIoeventfd
        {
            Addr = addr,
            Len = len,
            Fd = fd.Fd,
            Datamatch = datamatch ?? 0,
            Flags = (datamatch.HasValue ? Ioctls.KVM_IOEVENTFD_FLAG_DATAMATCH : 0) | (pio ? Ioctls.KVM_IOEVENTFD_FLAG_PIO : 0),
        };
        Ioctl(Ioctls.KVM_IOEVENTFD, &r, "KVM_IOEVENTFD");
    }

    /// <summary>
    /// Undoes <see cref="RegisterIoeventfd"/> (same arguments). KVM keeps an ioeventfd on its bus until it is
    /// deassigned, closing the eventfd is not enough: without this a hot-unplugged doorbell would keep its address
    /// (a re-plugged device there gets EEXIST) and its slot on KVM's bounded I/O bus.
    /// </summary>
    public void UnregisterIoeventfd(EventFd fd, ulong addr, uint len, ulong? datamatch, bool pio = false)
    {
        var r = new KvmIoeventfd
        {
            Addr = addr,
            Len = len,
            Fd = fd.Fd,
            Datamatch = datamatch ?? 0,
            Flags = Ioctls.KVM_IOEVENTFD_FLAG_DEASSIGN | (datamatch.HasValue ? Ioctls.KVM_IOEVENTFD_FLAG_DATAMATCH : 0)
                | (pio ? Ioctls.KVM_IOEVENTFD_FLAG_PIO : 0),
        };
        Ioctl(Ioctls.KVM_IOEVENTFD, &r, "KVM_IOEVENTFD");
    }

    /// <summary>Fills <paramref name="bitmap"/> (one bit per page of the slot) and clears KVM's copy.</summary>
    public void GetDirtyLog(uint slot, Span<ulong> bitmap)
    {
        fixed (ulong* p = bitmap)
        {
            var r = new KvmDirtyLog { Slot = slot, DirtyBitmap = (ulong)p };
            Ioctl(Ioctls.KVM_GET_DIRTY_LOG, &r, "KVM_GET_DIRTY_LOG");
        }
    }

    public Vcpu CreateVcpu(uint id)
    {
        int fd = IoctlVal(Ioctls.KVM_CREATE_VCPU, id, "KVM_CREATE_VCPU");
        return new Vcpu(fd, id, _vcpuMmapSize);
    }
}
