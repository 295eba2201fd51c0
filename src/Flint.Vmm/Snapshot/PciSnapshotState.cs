using Flint.Devices.Virtio.Pci;
using Flint.Vmm.Pci;

namespace Flint.Vmm.Snapshot;

/// <summary>
/// The "pci" section once parsed and checked (<see cref="PciStateCodec.Parse"/>): the host bridge's config registers
/// and each virtio-pci function. Parsed before the VM is built, so a bad section changes nothing.
/// </summary>
public sealed record PciSnapshotState(uint[] HostBridgeRegisters, IReadOnlyList<PciFunctionState> Functions);

/// <summary>One function on bus 0: its slot (device number; function 0), transport, and the device's runtime state
/// (what a virtio-mmio snapshot keeps in <c>runtime/N</c>).</summary>
public sealed record PciFunctionState(int Slot, VirtioPciTransportState Transport, byte[] Runtime)
{
    /// <summary>The device's configuration id (empty for vsock, entropy, balloon, memory); null in a version 1 section.</summary>
    public string? Id { get; init; }

    /// <summary>A virtio-net with an MMDS stack (version 2; a version 1 section leaves it to mmds-config).</summary>
    public bool ServesMmds { get; init; }

    /// <summary>The device's type and id: where the restore places it (<see cref="PciStateCodec.Placement"/>); null in a version 1 section.</summary>
    public PciDeviceKey? Key => Id is { } id ? new PciDeviceKey(Transport.DeviceType, id) : null;
}
