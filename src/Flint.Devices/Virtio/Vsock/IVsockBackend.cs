using Flint.Devices.Logging;

namespace Flint.Devices.Virtio.Vsock;

/// <summary>
/// The host side of a vsock device (Firecracker's VsockBackend: a VsockChannel plus its own event sources). The
/// device parses and validates every guest packet once and hands the result here; it asks here for packets to fill
/// the guest's rx buffers. Every member runs on the event-loop thread under <see cref="IVsockBackendHost.SyncRoot"/>,
/// except <see cref="OnDeviceReset"/> (a vCPU thread, lock held) and <see cref="IDisposable.Dispose"/>.
/// </summary>
internal interface IVsockBackend : IDisposable
{
    /// <summary>Fds the event loop polls for the backend (registered once); their handlers take the host's lock.</summary>
    IReadOnlyList<EventSource> EventSources { get; }

    /// <summary>Live connections, handshaking ones included.</summary>
    int ConnectionCount { get; }

    /// <summary>Called once by the device that owns this backend, before anything else.</summary>
    void Attach(IVsockBackendHost host);

    /// <summary>Catches up on work deferred from other threads (a reset's closing of every socket).</summary>
    void Sync();

    /// <summary>
    /// A guest packet whose header passed <see cref="VsockHeader.Validate"/>; <paramref name="payload"/> reads the rest
    /// of its tx chain (at least <c>header.Len</c> bytes).
    /// </summary>
    void OnGuestPacket(in VsockHeader header, ChainReader payload);

    /// <summary>A packet from our guest whose header failed validation: reset the pair it names (it carries nothing usable).</summary>
    void OnMalformedPacket(in VsockHeader header);

    /// <summary>There may be a packet for the guest (<see cref="FillRx"/> may still find nothing).</summary>
    bool HasPendingRx { get; }

    /// <summary>Writes the next packet for the guest into <paramref name="rx"/> (writable, at least a header long); its length, or -1 when there is none.</summary>
    int FillRx(ChainWriter rx);

    /// <summary>The device was reset: every connection is gone for the guest. May defer closing to the event-loop thread.</summary>
    void OnDeviceReset();
}

/// <summary>What a backend needs from the device that owns it.</summary>
internal interface IVsockBackendHost
{
    /// <summary>The device lock: queue processing and every backend event handler run under it.</summary>
    Lock SyncRoot { get; }

    ulong GuestCid { get; }

    VsockMetrics Metrics { get; }

    /// <summary>The device's rate-limited log (bound to the VMM's logger): every failure goes here with its metric.</summary>
    DeviceLog Log { get; }

    /// <summary>Event-loop thread, <see cref="SyncRoot"/> held: the backend queued packets for the guest; fill rx buffers and interrupt.</summary>
    void RxReady();
}
