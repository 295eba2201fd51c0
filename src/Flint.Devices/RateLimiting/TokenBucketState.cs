using Flint.Snapshot;

namespace Flint.Devices.RateLimiting;

/// <summary>
/// A token bucket in a snapshot, as Firecracker's rate_limiter/persist.rs keeps one: size, one-time burst left,
/// refill time, budget left and the nanoseconds since its last update; Flint also keeps the burst it started with
/// (a token given back never raises the burst above it). Read back only when it is a bucket
/// <see cref="TokenBucket"/> could have been: enabled, budget within the size, burst left within the initial burst.
/// </summary>
public sealed record TokenBucketState(ulong Size, ulong InitialOneTimeBurst, ulong OneTimeBurst, ulong RefillTimeMs,
    ulong Budget, ulong ElapsedNs)
{
    public void Write(StateWriter w)
    {
        w.U64(Size); w.U64(InitialOneTimeBurst); w.U64(OneTimeBurst); w.U64(RefillTimeMs); w.U64(Budget); w.U64(ElapsedNs);
    }

    public static TokenBucketState Read(StateReader r)
    {
        var s = new TokenBucketState(r.U64(), r.U64(), r.U64(), r.U64(), r.U64(), r.U64());
        if (s.Size == 0 || s.RefillTimeMs == 0)
            throw new SnapshotFormatException($"Section {r.Section}: a saved token bucket of size {s.Size} and refill time {s.RefillTimeMs} ms limits nothing.");
        if (s.Budget > s.Size || s.OneTimeBurst > s.InitialOneTimeBurst)
            throw new SnapshotFormatException($"Section {r.Section}: a saved token bucket holds more tokens than it can (budget {s.Budget} of {s.Size}, burst {s.OneTimeBurst} of {s.InitialOneTimeBurst}).");
        return s;
    }
}
