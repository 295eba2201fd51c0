using Flint.Devices.Virtio.Balloon;
using Flint.Vmm.Config;
using Flint.Vmm.Logging;

namespace Flint.Vmm.Builder;

public static partial class VmBuilder
{
    /// <summary>Step: the virtio-balloon device.</summary>
    internal static void AttachBalloon(VmConfig config, VirtioDeviceSet devices)
    {
        if (ConfigLoader.Present(config.Balloon) is not { } bj) return;
        var b = DeviceConfigs.Balloon(bj);
        // Firecracker's Balloon::new: log_dev_preview_warning("Free Page Hinting", None).
        if (b.FreePageHinting) Logger.Warn("[DevPreview] Free Page Hinting is in development preview.");
        devices.Balloon = new VirtioBalloon(b.AmountMib, b.DeflateOnOom, b.StatsPollingIntervalS,
            b.FreePageHinting, b.FreePageReporting);
        devices.Add(devices.Balloon);
    }
}
