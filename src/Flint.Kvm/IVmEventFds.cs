using Flint.Sys;

namespace Flint.Kvm;

/// <summary>
/// What a device needs from its VM: an eventfd that injects a guest interrupt (irqfd) and an eventfd that a guest
/// write to a doorbell address signals (ioeventfd). An interface so the builder's device steps run in tests with a
/// fake that records the bindings, without /dev/kvm.
/// </summary>
public interface IVmEventFds
{
    /// <summary>Binds <paramref name="fd"/> to <paramref name="gsi"/>: a write to it injects that interrupt.</summary>
    void RegisterIrqfd(EventFd fd, uint gsi);

    /// <summary>Binds <paramref name="fd"/> to a guest write of <paramref name="len"/> bytes at <paramref name="addr"/>.</summary>
    void RegisterIoeventfd(EventFd fd, ulong addr, uint len, ulong? datamatch, bool pio = false);
}
