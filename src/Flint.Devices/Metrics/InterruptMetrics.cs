namespace Flint.Devices.Metrics;

/// <summary>
/// Firecracker's <c>interrupts</c> group: every virtio interrupt raised (<c>triggers</c>, counted in its IrqTrigger on
/// each used-queue or config interrupt). Process-wide as Firecracker's is: one VM per process. <c>config_updates</c>
/// counts the MSI-X routing updates of the virtio-pci transport (--enable-pci): 0 on virtio-mmio.
/// </summary>
public static class InterruptMetrics
{
    public static long Triggers;
    public static long ConfigUpdates;
}
