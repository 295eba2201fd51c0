namespace Flint.Devices.Virtio;

/// <summary>
/// Where a virtio-pci device's interrupts go when MSI-X is in use: the vector the driver assigned to each queue
/// (queue_msix_vector) and to config changes (msix_config). Implemented by the PCI transport; called from the event
/// loop and device threads, so it must not block and must not allocate.
/// </summary>
public interface IVirtioVectorRouter
{
    void SignalQueue(int queue);
    void SignalConfig();
}
