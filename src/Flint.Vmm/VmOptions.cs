namespace Flint.Vmm;

/// <summary>Process-level settings that are not part of the Firecracker configuration document.</summary>
public sealed class VmOptions
{
    /// <summary>Add the boot timer device (--boot-timer).</summary>
    public bool BootTimer { get; init; }

    /// <summary>
    /// --enable-pci: virtio devices are virtio-pci functions with MSI-X on a PCI segment (ECAM + 0xCF8) instead of
    /// virtio-mmio slots.
    /// </summary>
    public bool EnablePci { get; init; }

    /// <summary>Built-in CPU template to force; null detects it from the host (KvmPvm on kvm_pvm hosts).</summary>
    public string? CpuTemplate { get; init; }

    /// <summary>Where the guest's serial console goes; null drops it.</summary>
    public Stream? ConsoleOutput { get; init; }

    /// <summary>An fd whose input feeds the serial console (stdin), or -1.</summary>
    public int ConsoleInputFd { get; init; } = -1;

    /// <summary>The MMDS data store the VM's network stacks serve (shared with the API).</summary>
    public Flint.Devices.Mmds.MmdsStore MmdsStore { get; init; } = new();

    /// <summary>Taps and the vsock socket the API opened at PUT time (Firecracker's order); null: the builder opens them.</summary>
    public Builder.PreopenedHostDevices? Preopened { get; init; }

    /// <summary>A snapshot load: where the snapshot's devices were (PCI slots and BARs, pmem windows); null for a boot.</summary>
    public Snapshot.RestorePlan? Restore { get; init; }

    /// <summary>The KVM device node.</summary>
    public string KvmPath { get; init; } = Flint.Kvm.KvmSystem.DefaultPath;
}
