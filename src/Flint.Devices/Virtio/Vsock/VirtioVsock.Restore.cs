using System.Buffers.Binary;
using static Flint.Devices.Virtio.Vsock.VsockConstants;

namespace Flint.Devices.Virtio.Vsock;

/// <summary>
/// Snapshots, as Firecracker's vsock device.rs does them: vsock connections do not survive a snapshot (the protocol
/// does not tolerate lost packets, and the host sockets belong to one process). At snapshot create the device posts
/// VIRTIO_VSOCK_EVENT_TRANSPORT_RESET on the event queue (spec 5.10.6.6), so it lies in the saved guest memory; the
/// guest's driver handles it when the VM runs again (the resumed original and every restored copy), closes its
/// connections and reads the guest CID again; its listening sockets stay. Until the guest acknowledges the event (it
/// refills the event queue and kicks it), no rx packet is delivered: a packet for a new connection that arrived before
/// the reset was handled would be reset with the rest. The flag that gates rx is saved with the snapshot.
/// </summary>
public sealed partial class VirtioVsock
{
    public const uint EventTransportReset = 0;

    // Under _lock. Set when a TRANSPORT_RESET event is in the event queue's used ring and the guest has not kicked the
    // event queue since (Firecracker's pending_event_ack).
    private bool _pendingEventAck;

    /// <summary>A TRANSPORT_RESET event is posted and the guest has not acknowledged it: rx delivery waits.</summary>
    public bool PendingEventAck { get { lock (_lock) return _pendingEventAck; } }

    /// <summary>
    /// Called on the paused VM just before its state is saved (Firecracker's prepare_save): posts TRANSPORT_RESET when
    /// the device is live. False when it is not live or the guest left no event buffer (counted in
    /// ev_queue_event_fails and logged; the snapshot goes on, as Firecracker's does).
    /// </summary>
    public bool PrepareSave()
    {
        lock (_lock)
        {
            if (_disposed || !IsActivated || _mem is not { } mem || _irq is not { } irq) return false;
            var q = Queues[EventQueue];
            if (!q.TryPop(out var chain))
            {
                Fail(ref Metrics.EvQueueEventFails, "vsock: no event buffer for the transport reset event");
                return false;
            }
            uint len = 0;
            // The one field of an event (le32 id); the buffer must be device-writable and hold it.
            if (_rxBuffers.Load(ref chain, mem) && _rxBuffers.ReadableCount == 0 && _rxBuffers.WritableBytes >= 4)
            {
                Span<byte> ev = stackalloc byte[4];
                BinaryPrimitives.WriteUInt32LittleEndian(ev, EventTransportReset);
                len = (uint)_rxBuffers.Writer().Write(ev);
            }
            else Fail(ref Metrics.EvQueueEventFails, "vsock: unusable event buffer (broken, device-readable or shorter than 4 bytes)");
            q.AddUsed(chain.HeadIndex, len);
            if (len != 4) return false;
            _pendingEventAck = true;
            // Unconditionally, as Firecracker: the guest must see this one.
            irq.SignalUsedQueue(EventQueue);
            return true;
        }
    }

    /// <summary>
    /// After the transport was restored: takes the saved rx gate back and, when a reset event is still waiting for the
    /// guest, raises the event queue's interrupt again (Firecracker's kick on resume). The backend is this process's
    /// own: it has no connections to drop.
    /// </summary>
    public void OnRestored(bool pendingEventAck)
    {
        lock (_lock)
        {
            if (_disposed || !IsActivated || _irq is not { } irq) return;
            _pendingEventAck = pendingEventAck;
            if (pendingEventAck) irq.SignalUsedQueue(EventQueue);
        }
    }

    /// <summary>
    /// Which queues the restore rings once (a doorbell the old process had not served died with it). Not the event
    /// queue: its kick is the guest's acknowledgement of the reset event, which would open the rx gate too early.
    /// </summary>
    public override bool ReplaysKickAfterRestore(int queue) => queue != EventQueue;
}
