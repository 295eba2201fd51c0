using Flint.Snapshot;

namespace Flint.Devices.RateLimiting;

/// <summary>An optional limiter in a snapshot: whether the device had one, then its <see cref="RateLimiter.SaveState"/>.</summary>
public static class RateLimiterSnapshot
{
    public static void Write(StateWriter w, RateLimiter? limiter)
    {
        w.Bool(limiter != null);
        limiter?.SaveState(w);
    }

    /// <summary>
    /// Restores into <paramref name="limiter"/>. A saved limiter for a device built without one (its configuration
    /// names none) is read and dropped: the device stays unlimited, as its configuration says.
    /// </summary>
    public static void Read(StateReader r, RateLimiter? limiter)
    {
        if (!r.Bool()) return;
        if (limiter != null)
        {
            limiter.RestoreState(r);
            return;
        }
        for (int bucket = 0; bucket < 2; bucket++)
            if (r.Bool()) TokenBucketState.Read(r);
    }
}
