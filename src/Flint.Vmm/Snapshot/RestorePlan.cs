namespace Flint.Vmm.Snapshot;

/// <summary>
/// What a snapshot load tells the builder beyond the configuration: where the devices were, so the guest finds them
/// where it left them even after hotplugs and unplugs moved them off the places a fresh boot gives. Checked against the
/// configuration before the build (<see cref="SnapshotLoader"/>).
/// </summary>
/// <param name="Pci">The snapshot's transport: virtio-pci functions (a <c>pci</c> section), else virtio-mmio.</param>
/// <param name="PciPlacement">Each function's saved slot and BAR; null: configuration order (a version 1 section, or no PCI).</param>
/// <param name="PmemWindows">Each pmem device's saved window start, in configuration order; null: placed back to back.</param>
public sealed record RestorePlan(bool Pci, Pci.PciPlacement? PciPlacement, IReadOnlyList<ulong>? PmemWindows);
