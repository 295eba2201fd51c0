using Flint.Snapshot;
using static Flint.Devices.Virtio.Vsock.VsockConstants;

namespace Flint.Devices.Virtio.Vsock;

/// <summary>
/// Firecracker's VsockBackendState.local_port_last: where host-initiated connections take their next host-side port.
/// The restored guest may still hold the old connections until it handles the TRANSPORT_RESET event; going on from
/// the saved port keeps a new connection from reusing the (host port, guest port) pair of an old one.
/// </summary>
public sealed partial class VirtioVsock : IDeviceRuntimeState
{
    public void SaveRuntimeState(StateWriter w)
    {
        lock (_lock) w.U32(_muxer?.NextEphemeralPort ?? FirstEphemeralPort);
    }

    public void RestoreRuntimeState(StateReader r)
    {
        uint next = r.U32();
        if (next < FirstEphemeralPort)
            throw new SnapshotFormatException($"Section {r.Section}: host port {next} lies below the ephemeral range ({FirstEphemeralPort} and up).");
        lock (_lock)
            if (_muxer != null) _muxer.NextEphemeralPort = next;
    }
}
