namespace Flint.Devices.Pci.Msix;

/// <summary>
/// The host side of a function's MSI-X vectors: one interrupt route per vector. Flint.Vmm implements it over KVM
/// (a GSI with an MSI routing entry and an irqfd per vector); tests use a fake. Flint.Devices never sees KVM.
/// Route changes come from vCPU threads (table and control writes, under the MSI-X table's lock); <see cref="Trigger"/>
/// comes from the event loop and device threads and must not allocate or block.
/// </summary>
public interface IMsiVectors
{
    int Count { get; }

    /// <summary>
    /// Points vector <paramref name="index"/> at <paramref name="message"/> and enables (or, when
    /// <paramref name="enabled"/> is false, disables) its delivery. Returns false when the host refused the route;
    /// the vector then stays disabled and its interrupts are held pending.
    /// </summary>
    bool Route(int index, MsiMessage message, bool enabled);

    /// <summary>Sends vector <paramref name="index"/>'s message now (its route is enabled).</summary>
    void Trigger(int index);
}

/// <summary>An MSI message as a table entry holds it (PCI 3.0 6.8.2): a 64-bit address and 32-bit data.</summary>
public readonly record struct MsiMessage(uint AddressLow, uint AddressHigh, uint Data);
