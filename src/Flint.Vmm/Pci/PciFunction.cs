using Flint.Devices.Virtio.Pci;
using Flint.Sys;

namespace Flint.Vmm.Pci;

/// <summary>
/// One virtio-pci function on the segment and everything it holds outside itself: its slot, its BAR, its vectors,
/// the doorbells KVM signals, the fds the event loop polls for it, and the resources that live exactly as long as it
/// (the device, a pmem mapping...). <see cref="PciDevices.Unplug"/> gives all of it back; nothing else may.
/// </summary>
public sealed class PciFunction
{
    internal PciFunction(VirtioPciTransport transport, int slot, ulong bar, KvmMsiVectors vectors, PciDeviceKey key)
    {
        Key = key;
        Transport = transport;
        Slot = slot;
        Bar = bar;
        Vectors = vectors;
    }

    public VirtioPciTransport Transport { get; }
    /// <summary>The device's type and configuration id: what a snapshot saves the function under.</summary>
    public PciDeviceKey Key { get; }
    /// <summary>PCI device number on bus 0 (00:slot.0).</summary>
    public int Slot { get; }
    /// <summary>BAR 0's guest-physical address.</summary>
    public ulong Bar { get; }
    internal KvmMsiVectors Vectors { get; }

    /// <summary>Queue doorbells registered as KVM ioeventfds (each is deassigned at unplug).</summary>
    internal List<(EventFd Fd, ulong Address)> Doorbells { get; } = [];
    /// <summary>Fds added to the event loop for this function (its queues and the device's own sources).</summary>
    internal List<int> LoopFds { get; } = [];
    /// <summary>Disposed at unplug, last first; each is also in the VM's owned list until then.</summary>
    internal List<IDisposable> Resources { get; } = [];
    /// <summary>Undone at unplug before <see cref="Resources"/> are disposed, last first (a KVM slot before its mapping).</summary>
    internal List<Action> Undo { get; } = [];
    internal bool Unplugged { get; set; }
}
