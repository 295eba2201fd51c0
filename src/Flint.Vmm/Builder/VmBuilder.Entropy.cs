using Flint.Devices.RateLimiting;
using Flint.Devices.Virtio.Rng;
using Flint.Vmm.Config;

namespace Flint.Vmm.Builder;

public static partial class VmBuilder
{
    /// <summary>Step: the virtio-rng entropy device with its rate limiter.</summary>
    internal static void AttachEntropy(VmConfig config, VirtioDeviceSet devices)
    {
        if (ConfigLoader.Present(config.Entropy) is not { } ej) return;
        devices.Rng = new VirtioRng(new RateLimiter(DeviceConfigs.Entropy(ej)));
        devices.Add(devices.Rng);
    }
}
