using Flint.Sys;

namespace Flint.Devices;

/// <summary>An interrupt delivered by writing an eventfd that KVM's irqfd binds to a GSI: no VM exit, no lock.</summary>
public sealed class EventFdInterrupt(EventFd fd) : IInterrupt
{
    public EventFd EventFd { get; } = fd;
    public long Count;

    public void Trigger()
    {
        Interlocked.Increment(ref Count);
        EventFd.Write(1);
    }
}
