using Flint.Sys;

namespace Flint.Kvm;

/// <summary>
/// What the PCI segment needs from its VM beyond <see cref="IVmEventFds"/>: taking doorbells and interrupt bindings
/// back (hot-unplug), the GSI routing table (MSI-X) and memory slots (virtio-pmem windows). An interface so the
/// segment's plug/unplug bookkeeping is tested without /dev/kvm, with a fake that records what is bound.
/// </summary>
public interface IPciVm : IVmEventFds
{
    /// <summary>Undoes <see cref="IVmEventFds.RegisterIoeventfd"/> with the same arguments (KVM_IOEVENTFD_FLAG_DEASSIGN).</summary>
    void UnregisterIoeventfd(EventFd fd, ulong addr, uint len, ulong? datamatch, bool pio = false);

    /// <summary>Undoes <see cref="IVmEventFds.RegisterIrqfd"/> (KVM_IRQFD_FLAG_DEASSIGN).</summary>
    void UnregisterIrqfd(EventFd fd, uint gsi);

    /// <summary>Replaces the whole GSI routing table (KVM_SET_GSI_ROUTING).</summary>
    void SetGsiRouting(ReadOnlySpan<KvmIrqRoutingEntry> entries);

    /// <summary>Adds, moves or (size 0) deletes a memory slot (KVM_SET_USER_MEMORY_REGION).</summary>
    void SetUserMemoryRegion(uint slot, ulong guestPhysAddr, ulong size, nint hostAddr, bool logDirty = false, bool readOnly = false);
}
