using System.Net.Sockets;
using System.Text;
using Flint.Devices.Virtio.Vsock;
using static Flint.Devices.Virtio.Vsock.VsockConstants;

namespace Flint.Devices.Tests.Virtio.Vsock;

/// <summary>
/// Snapshot create and restore of virtio-vsock, as Firecracker's device.rs: TRANSPORT_RESET posted on the event queue
/// at create, rx held back until the guest acknowledges it (kicks the event queue), the gate saved and restored.
/// </summary>
public sealed class VsockSnapshotTests : IDisposable
{
    private readonly VsockHarness _h = new();

    public void Dispose() => _h.Dispose();

    private void WaitFor(Func<bool> cond, string what)
    {
        long end = Environment.TickCount64 + 5000;
        while (!cond())
        {
            if (Environment.TickCount64 > end) throw new TimeoutException(what);
            Thread.Sleep(1);
        }
    }

    [Fact]
    public void Prepare_save_posts_transport_reset_on_the_event_queue_and_raises_the_interrupt()
    {
        ushort head = _h.Guest.PostEvent();
        int irqs = _h.Line.Count;
        Assert.True(_h.Device.PrepareSave());
        var ev = _h.Guest.TryTakeEvent();
        Assert.NotNull(ev);
        Assert.Equal(head, ev.Value.Id);
        Assert.Equal(4u, ev.Value.Len);
        Assert.Equal(VirtioVsock.EventTransportReset, ev.Value.Event);
        Assert.True(_h.Line.Count > irqs, "the guest is interrupted for the event");
        Assert.True(_h.Device.PendingEventAck);
        Assert.Equal(0, _h.Device.Metrics.EvQueueEventFails);
    }

    [Fact]
    public void Without_an_event_buffer_prepare_save_counts_a_failure_and_leaves_rx_open()
    {
        Assert.False(_h.Device.PrepareSave());
        Assert.Equal(1, _h.Device.Metrics.EvQueueEventFails);
        Assert.False(_h.Device.PendingEventAck);
        // rx is not gated: a host connection reaches the guest as before.
        var (host, _) = _h.OpenHostInitiated(52);
        host.Dispose();
    }

    [Fact]
    public void Rx_waits_for_the_guests_acknowledgement_of_the_reset()
    {
        _h.Guest.PostEvent();
        Assert.True(_h.Device.PrepareSave());
        using var host = _h.ConnectHost();
        host.Send(Encoding.ASCII.GetBytes("CONNECT 52\n"));
        WaitFor(() => _h.Device.ConnectionCount == 1, "the host connection reached the muxer");
        Assert.Null(_h.Guest.RecvNone(300)); // the REQUEST waits behind the gate
        // The guest handled the event: it refills the event queue and kicks it.
        _h.Guest.TryTakeEvent();
        _h.Guest.PostEvent();
        _h.Guest.Kick(EventQueue);
        var req = _h.Guest.Recv();
        Assert.Equal(OpRequest, req.Op);
        Assert.Equal(52u, req.DstPort);
        Assert.False(_h.Device.PendingEventAck);
    }

    [Fact]
    public void On_restored_takes_the_gate_back_and_signals_the_event_queue_again()
    {
        int irqs = _h.Line.Count;
        _h.Device.OnRestored(pendingEventAck: true);
        Assert.True(_h.Device.PendingEventAck);
        Assert.True(_h.Line.Count > irqs, "the saved event is signalled again, as Firecracker's kick on resume");
        irqs = _h.Line.Count;
        _h.Device.OnRestored(pendingEventAck: false);
        Assert.False(_h.Device.PendingEventAck);
        Assert.Equal(irqs, _h.Line.Count);
    }

    [Fact]
    public void Device_reset_clears_the_gate()
    {
        _h.Device.OnRestored(pendingEventAck: true);
        _h.Device.Reset();
        Assert.False(_h.Device.PendingEventAck);
    }

    [Fact]
    public void Restore_rings_every_queue_but_the_event_queue()
    {
        Assert.True(_h.Device.ReplaysKickAfterRestore(RxQueue));
        Assert.True(_h.Device.ReplaysKickAfterRestore(TxQueue));
        Assert.False(_h.Device.ReplaysKickAfterRestore(EventQueue));
    }
}
