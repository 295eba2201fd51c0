using Flint.Devices.RateLimiting;
using Flint.Snapshot;

namespace Flint.Devices.Virtio.Rng;

/// <summary>What Firecracker's rng persist.rs saves beyond the transport: the rate limiter's buckets.</summary>
public sealed partial class VirtioRng : IDeviceRuntimeState
{
    public void SaveRuntimeState(StateWriter w) => RateLimiterSnapshot.Write(w, RateLimiter);

    public void RestoreRuntimeState(StateReader r) => RateLimiterSnapshot.Read(r, RateLimiter);
}
