using Flint.Devices.Virtio.Pci;

namespace Flint.Vmm.Snapshot;

/// <summary>
/// The "pci" section once parsed and checked (<see cref="PciStateCodec.Parse"/>): the host bridge's config registers
/// and each virtio-pci function. Parsed before the VM is built, so a bad section changes nothing.
/// </summary>
public sealed record PciSnapshotState(uint[] HostBridgeRegisters, IReadOnlyList<PciFunctionState> Functions);

/// <summary>One function on bus 0: its slot (device number; function 0), transport, and the device's runtime state
/// (what a virtio-mmio snapshot keeps in <c>runtime/N</c>).</summary>
public sealed record PciFunctionState(int Slot, VirtioPciTransportState Transport, byte[] Runtime);
