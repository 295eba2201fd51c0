using System.Diagnostics;

namespace Flint.Devices.RateLimiting;

/// <summary>A monotonic nanosecond clock. Token buckets read it; tests drive a <see cref="FakeClock"/> instead.</summary>
public interface IClock
{
    /// <summary>Nanoseconds since an arbitrary fixed origin; never goes backwards.</summary>
    ulong NowNanoseconds { get; }
}

/// <summary>The host's monotonic clock (CLOCK_MONOTONIC via Stopwatch).</summary>
public sealed class MonotonicClock : IClock
{
    public static readonly MonotonicClock Instance = new();

    private static readonly bool s_nanosecondTicks = Stopwatch.Frequency == 1_000_000_000;

    private MonotonicClock() { }

    public ulong NowNanoseconds
    {
        get
        {
            long t = Stopwatch.GetTimestamp();
            if (s_nanosecondTicks) return (ulong)t;
            return (ulong)((UInt128)(ulong)t * 1_000_000_000UL / (ulong)Stopwatch.Frequency);
        }
    }
}

/// <summary>A clock that only moves when told to: refill arithmetic in tests is exact.</summary>
public sealed class FakeClock(ulong startNs = 1_000_000_000) : IClock
{
    private ulong _now = startNs;

    public ulong NowNanoseconds => Volatile.Read(ref _now);

    public void AdvanceNs(ulong ns) => Interlocked.Add(ref _now, ns);

    public void AdvanceMs(ulong ms) => AdvanceNs(ms * 1_000_000);
}
