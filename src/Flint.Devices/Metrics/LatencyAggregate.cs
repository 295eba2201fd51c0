using System.Diagnostics;

namespace Flint.Devices.Metrics;

/// <summary>
/// Firecracker's LatencyAggregateMetrics (the <c>*_agg</c> objects of the metrics file): the shortest and longest
/// duration seen (kept for the process's life, as its SharedStoreMetric pair is) and the sum of all durations
/// (reported as the change since the previous flush). Recording is two Stopwatch reads and a few Interlocked ops, no
/// allocation, so it can sit on the vCPU exit path and the block request path.
/// </summary>
public sealed class LatencyAggregate
{
    private long _minUs, _maxUs, _sumUs;

    public long MinUs => Volatile.Read(ref _minUs);
    public long MaxUs => Volatile.Read(ref _maxUs);
    public long SumUs => Interlocked.Read(ref _sumUs);

    /// <summary>The timestamp to hand to <see cref="RecordSince"/> when the measured work is done.</summary>
    public static long Start() => Stopwatch.GetTimestamp();

    /// <summary>Records the time since <paramref name="startTimestamp"/> (from <see cref="Start"/>).</summary>
    public void RecordSince(long startTimestamp) => Record((long)Stopwatch.GetElapsedTime(startTimestamp).TotalMicroseconds);

    /// <summary>
    /// Records one duration. As Firecracker's recorder, a minimum of 0 reads as "nothing recorded yet", so the first
    /// duration always becomes the minimum.
    /// </summary>
    public void Record(long us)
    {
        if (us < 0) us = 0;
        Interlocked.Add(ref _sumUs, us);
        long cur;
        while (((cur = Volatile.Read(ref _minUs)) == 0 || cur > us) && Interlocked.CompareExchange(ref _minUs, us, cur) != cur) { }
        while (((cur = Volatile.Read(ref _maxUs)) == 0 || cur < us) && Interlocked.CompareExchange(ref _maxUs, us, cur) != cur) { }
    }

    /// <summary>The three values under the metrics file's dotted names (<c>read_agg.min_us</c>...). Allocates: flush only.</summary>
    public (string Name, long Value)[] Snapshot(string name) =>
        [(name + ".min_us", MinUs), (name + ".max_us", MaxUs), (name + ".sum_us", SumUs)];
}
