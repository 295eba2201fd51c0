namespace Flint.Devices;

/// <summary>An edge-triggered interrupt line into the guest (an irqfd in a VM, a counter in tests).</summary>
public interface IInterrupt
{
    void Trigger();
}
