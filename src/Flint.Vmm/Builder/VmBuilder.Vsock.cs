using Flint.Devices.Virtio.Vsock;
using Flint.Vmm.Config;

namespace Flint.Vmm.Builder;

public static partial class VmBuilder
{
    /// <summary>Step: the virtio-vsock device, on the socket the API bound at PUT /vsock (or bound here).</summary>
    internal static void AttachVsock(VmConfig config, VmOptions options, EventLoop loop, VirtioDeviceSet devices)
    {
        if (ConfigLoader.Present(config.Vsock) is not { } vj) return;
        var vs = DeviceConfigs.Vsock(vj);
        if (options.Preopened?.TakeVsock(vs.UdsPath) is { } listener)
        {
            try { devices.Vsock = new VirtioVsock(vs.GuestCid, listener, loop); }
            catch { listener.Dispose(); throw; }
        }
        else devices.Vsock = new VirtioVsock(vs.GuestCid, vs.UdsPath, loop);
        devices.Add(devices.Vsock);
    }
}
