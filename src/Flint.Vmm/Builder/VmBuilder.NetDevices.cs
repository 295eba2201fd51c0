using Flint.Devices.Mmds;
using Flint.Devices.RateLimiting;
using Flint.Devices.Virtio.Net;
using Flint.Vmm.Config;

namespace Flint.Vmm.Builder;

public static partial class VmBuilder
{
    /// <summary>
    /// Step: one virtio-net per network interface, on the tap the API opened at PUT (or opened here for a config
    /// file), with its rx/tx rate limiters and, for the interfaces mmds-config names, the MMDS network stack.
    /// </summary>
    internal static void AttachNetDevices(VmConfig config, VmOptions options, VirtioDeviceSet devices)
    {
        var mmds = ConfigLoader.Present(config.MmdsConfig) is { } mj ? DeviceConfigs.Mmds(mj) : null;
        foreach (var n in config.NetworkInterfaces ?? [])
        {
            var net = DeviceConfigs.Net(n);
            // A restore gives the stack to the interfaces that had one (not to one hot-plugged under a listed id).
            bool listed = mmds != null && mmds.Interfaces.Contains(net.IfaceId);
            bool serves = listed && (options.Restore?.PciPlacement is not { } placed || placed.MmdsInterfaces.Contains(net.IfaceId));
            var stack = serves ? new MmdsNetworkStack(options.MmdsStore, mmds!.Version, mmds.Ipv4Address) : null;
            var rx = new RateLimiter(net.Rx);
            var tx = new RateLimiter(net.Tx);
            var tap = options.Preopened?.TakeTap(net.IfaceId, net.HostDevName) ?? Tap.Open(net.HostDevName);
            VirtioNet dev;
            try { dev = new VirtioNet(tap, net.GuestMac, new NetRateLimiterAdapter(rx), new NetRateLimiterAdapter(tx), stack); }
            catch { tap.Dispose(); throw; }
            devices.Add(dev, net.IfaceId);
            devices.Nets.Add((net.IfaceId, dev, stack, rx, tx));
        }
    }
}
