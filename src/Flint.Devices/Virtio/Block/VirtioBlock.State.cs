using Flint.Devices.RateLimiting;
using Flint.Snapshot;

namespace Flint.Devices.Virtio.Block;

/// <summary>
/// What Firecracker's block persist.rs saves beyond the transport and the configuration: the rate limiter's buckets
/// (id, path, cache type, read-only and the engine are in the saved configuration).
/// </summary>
public sealed partial class VirtioBlock : IDeviceRuntimeState
{
    public void SaveRuntimeState(StateWriter w) => RateLimiterSnapshot.Write(w, RateLimiter);

    public void RestoreRuntimeState(StateReader r) => RateLimiterSnapshot.Read(r, RateLimiter);
}
