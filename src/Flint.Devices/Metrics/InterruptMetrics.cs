namespace Flint.Devices.Metrics;

/// <summary>
/// Firecracker's <c>interrupts</c> group: every virtio interrupt raised (<c>triggers</c>, counted in its IrqTrigger on
/// each used-queue or config interrupt). Process-wide as Firecracker's is: one VM per process. <c>config_updates</c>
/// counts MSI-X configuration changes of its PCI transport; Flint's devices are virtio-mmio only, so it stays 0.
/// </summary>
public static class InterruptMetrics
{
    public static long Triggers;
}
