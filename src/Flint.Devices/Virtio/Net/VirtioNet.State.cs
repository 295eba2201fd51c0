using Flint.Devices.RateLimiting;
using Flint.Snapshot;

namespace Flint.Devices.Virtio.Net;

/// <summary>
/// What Firecracker's net persist.rs saves beyond the transport and the configuration: the rx and tx rate limiters'
/// buckets (the tap name, MAC, MTU and MMDS stack's address are in the saved configuration).
/// </summary>
public sealed partial class VirtioNet : IDeviceRuntimeState
{
    public void SaveRuntimeState(StateWriter w)
    {
        RateLimiter? rx, tx;
        lock (_lock) (rx, tx) = (Limiter(_rxLimiter), Limiter(_txLimiter));
        RateLimiterSnapshot.Write(w, rx);
        RateLimiterSnapshot.Write(w, tx);
    }

    public void RestoreRuntimeState(StateReader r)
    {
        RateLimiter? rx, tx;
        lock (_lock) (rx, tx) = (Limiter(_rxLimiter), Limiter(_txLimiter));
        RateLimiterSnapshot.Read(r, rx);
        RateLimiterSnapshot.Read(r, tx);
    }

    private static RateLimiter? Limiter(INetRateLimiter? l) => (l as NetRateLimiterAdapter)?.Limiter;
}
