using Flint.Arch.X86;
using Flint.Devices.RateLimiting;
using Flint.Devices.Virtio.Block;
using Flint.Vmm.Config;

namespace Flint.Vmm.Builder;

public static partial class VmBuilder
{
    /// <summary>
    /// Step: one virtio-blk per drive (a drive with a socket: vhost-user, <see cref="AttachVhostUserBlock"/>). Firecracker puts the root device first so it is /dev/vda, and adds its
    /// root= (by PARTUUID when given) and ro/rw to the kernel command line.
    /// </summary>
    internal static void AttachBlockDevices(VmConfig config, VirtioDeviceSet devices, KernelCmdline cmdline)
    {
        foreach (var d in config.Drives.OrderByDescending(d => d.IsRootDevice))
        {
            if (d.Socket != null) { AttachVhostUserBlock(d, devices, cmdline); continue; }
            var limiter = new RateLimiter(DeviceConfigs.Limiter(d.RateLimiter, $"drive \"{d.DriveId}\" rate_limiter"));
            var dev = new VirtioBlock(d.PathOnHost!, d.IsReadOnly ?? false, d.DriveId, limiter, writeback: d.CacheType == "Writeback",
                ioEngine: d.IoEngine == "Async" ? BlockIoEngine.Async : BlockIoEngine.Sync);
            var transport = devices.Add(dev, d.DriveId);
            devices.Blocks.Add((d.DriveId, transport, dev));
            if (d.IsRootDevice)
            {
                string rootDev = d.PartUuid is { } pu ? $"root=PARTUUID={pu}" : "root=/dev/vda";
                cmdline.Append(rootDev + ((d.IsReadOnly ?? false) ? " ro" : " rw"));
            }
        }
    }
}
