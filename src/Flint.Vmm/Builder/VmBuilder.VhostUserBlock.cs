using Flint.Arch.X86;
using Flint.Devices.Virtio.VhostUser;
using Flint.Memory;
using Flint.Vmm.Config;
using Flint.Vmm.Logging;

namespace Flint.Vmm.Builder;

// Assembly of vhost-user block drives (a drive with `socket`): guest RAM in a memfd so the backend can map it, the
// connection and negotiation with the backend, and the device's virtio-mmio slot or virtio-pci function whose doorbell
// the backend polls directly. Firecracker: Block::new with VhostUserBlockConfig, VmResources::allocate_memory_regions,
// attach_pci_virtio_device.
public static partial class VmBuilder
{
    /// <summary>How long the backend may take to answer one request; Flint's own bound (Firecracker waits forever).</summary>
    internal static TimeSpan VhostUserAnswerTimeout { get; set; } = VhostUserFrontend.DefaultTimeout;

    /// <summary>Whether any drive is served over vhost-user: guest RAM must then be shared (memfd) memory.</summary>
    private static bool NeedsSharedMemory(VmConfig config) => config.Drives.Any(d => d.Socket != null);

    /// <summary>
    /// Guest RAM for this configuration: memfd-backed shared memory when a vhost-user drive exists (Firecracker's
    /// memfd_backed), the ordinary private anonymous memory otherwise (shared pages fault more slowly).
    /// </summary>
    internal static GuestMemory AllocateGuestRam(VmConfig config, IEnumerable<(ulong GuestBase, ulong Size)> ranges, HugePages hugePages)
    {
        if (!NeedsSharedMemory(config)) return GuestMemory.Create(ranges, hugePages);
        if (hugePages != HugePages.None)
            Logger.Warn("vhost-user block: guest memory is a memfd without huge pages (huge_pages is not applied to shared memory by this build).");
        return GuestMemory.CreateShared(ranges);
    }

    /// <summary>
    /// Connects to the backend of drive <paramref name="d"/>, negotiates and adds the device; a root drive also adds
    /// its root= argument. Failures are Firecracker's "Unable to create the virtio block device: ..." text.
    /// </summary>
    internal static VhostUserBlock AttachVhostUserBlock(DriveConfig d, VirtioDeviceSet devices, KernelCmdline cmdline)
    {
        var dev = ConnectVhostUserBlock(d);
        try
        {
            // Over virtio-pci the backend's completions go through the event loop to the queue's MSI-X vector.
            if (devices.Pci != null) dev.RelayInterruptsThroughVmm();
            var transport = devices.Add(dev, d.DriveId);
            dev.UseDoorbells(transport?.QueueEvents ?? devices.Pci!.Find(dev)!.Transport.QueueEvents);
        }
        catch
        {
            dev.Dispose();
            throw;
        }
        devices.VhostUserBlocks.Add(dev);
        if (d.IsRootDevice)
        {
            // Read-only is the backend's to say (VIRTIO_BLK_F_RO), as in Firecracker.
            string rootDev = d.PartUuid is { } pu ? $"root=PARTUUID={pu}" : "root=/dev/vda";
            cmdline.Append(rootDev + (dev.ReadOnly ? " ro" : " rw"));
        }
        return dev;
    }

    /// <summary>
    /// Firecracker's VhostUserBlock::new: connects to drive <paramref name="d"/>'s backend and negotiates. Failures are
    /// Firecracker's "Unable to create the virtio block device: ..." text (a <see cref="ConfigException"/>).
    /// </summary>
    internal static VhostUserBlock ConnectVhostUserBlock(DriveConfig d)
    {
        // Firecracker's log_dev_preview_warning("vhost-user-blk device", None).
        Logger.Warn("[DevPreview] vhost-user-blk device is in development preview.");
        try { return new VhostUserBlock(VhostUserFrontend.Connect(d.Socket!, VhostUserAnswerTimeout), d.DriveId, writeback: d.CacheType == "Writeback"); }
        catch (VhostUserException e)
        {
            Logger.Error($"vhost-user block \"{d.DriveId}\" ({d.Socket}): {e.Message}");
            throw new ConfigException(VhostUserCreateFailure(e));
        }
    }

    /// <summary>A vhost-user drive hot-plugged into a VM whose guest memory no backend can map.</summary>
    internal static string VhostUserNeedsSharedMemory(string driveId) =>
        $"Unable to create the virtio block device: vhost-user drive \"{driveId}\" needs guest memory a backend can map, "
        + "and this VM's is private: it is shared (a memfd) only when a vhost-user drive is configured before the start.";

    /// <summary>DriveError::CreateBlockDevice(BlockError::VhostUserBackend(VhostUserBlockError::VhostUser(..))).</summary>
    private static string VhostUserCreateFailure(VhostUserException e) =>
        $"Unable to create the virtio block device: Vhost user backend error: Vhost-user error: {e.Message}";
}
