namespace Flint.Devices;

/// <summary>An fd the VMM's event loop must poll for a device (tap, timerfd, listening socket) and what to do when ready.</summary>
public sealed record EventSource(int Fd, Action<uint> OnReady, uint Events = 1 /* EPOLLIN */);

/// <summary>
/// A device back-end with fds of its own beyond its queue doorbells. The builder registers each source on the
/// event loop once the device exists; handlers then run on the event-loop thread, like ProcessQueue.
/// A device that opens fds later (a new vsock connection) uses <see cref="IEventRegistrar"/>.
/// </summary>
public interface IEventSources
{
    IReadOnlyList<EventSource> EventSources { get; }
}

/// <summary>Lets a device add or remove event-loop fds at run time (called on the event-loop thread only).</summary>
public interface IEventRegistrar
{
    void Add(EventSource source);
    void Remove(int fd);
}
