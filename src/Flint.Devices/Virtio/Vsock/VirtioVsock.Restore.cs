using System.Buffers.Binary;
using static Flint.Devices.Virtio.Vsock.VsockConstants;

namespace Flint.Devices.Virtio.Vsock;

/// <summary>
/// After a snapshot restore: the host sockets of the old process are gone, so every connection is dropped and the
/// guest is told with VIRTIO_VSOCK_EVENT_TRANSPORT_RESET on the event queue (spec 5.10.6.6), as Firecracker does; the
/// guest's driver then resets its own sockets and the guest CID is read again.
/// </summary>
public sealed partial class VirtioVsock
{
    public const uint EventTransportReset = 0;

    /// <summary>Drops all connections and posts one TRANSPORT_RESET event. False when the device is not live or the
    /// guest left no event buffer (nothing to tell it with: its sockets simply see no peer).</summary>
    public bool SendTransportReset()
    {
        lock (_lock)
        {
            if (_disposed || !IsActivated || Memory is not { } mem || Interrupt is not { } irq) return false;
            _backend.OnDeviceReset();
            var q = Queues[EventQueue];
            if (!q.TryPop(out var chain)) return false;
            var buffers = new ChainBuffers(QueueSize);
            uint len = 0;
            if (buffers.Load(ref chain, mem) && buffers.ReadableCount == 0 && buffers.WritableBytes >= 4)
            {
                Span<byte> ev = stackalloc byte[4];
                BinaryPrimitives.WriteUInt32LittleEndian(ev, EventTransportReset);
                var w = buffers.Writer();
                len = (uint)w.Write(ev);
            }
            q.AddUsed(chain.HeadIndex, len);
            if (q.NeedsNotification()) irq.SignalUsedQueue();
            return len == 4;
        }
    }
}
