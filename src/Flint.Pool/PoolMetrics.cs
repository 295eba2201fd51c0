using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Flint.Pool;

/// <summary>
/// The pool's instruments on the <c>Flint.Pool</c> <see cref="Meter"/>, the .NET convention: any listener
/// (OpenTelemetry's <c>AddMeter("Flint.Pool")</c>, dotnet-counters, <see cref="MeterListener"/>, the daemon's own
/// <c>GET /metrics</c>) sees them without the pool knowing it. Every instrument carries a <c>function</c> tag.
/// </summary>
public sealed class PoolMetrics : IDisposable
{
    public const string MeterName = "Flint.Pool";

    private readonly Meter _meter;
    private readonly Counter<long> _invocations;
    private readonly Histogram<double> _invokeDuration;
    private readonly Histogram<double> _queueWait;
    private readonly Counter<long> _slotsStarted;
    private readonly Counter<long> _slotsStopped;
    private readonly Counter<long> _launchFailures;
    private readonly Histogram<double> _slotStart;

    /// <param name="pools">Read by the observable gauges at each collection.</param>
    public PoolMetrics(Func<IEnumerable<FunctionPool>> pools, IMeterFactory? factory = null)
    {
        _meter = factory?.Create(MeterName) ?? new Meter(MeterName, "1.0");
        _invocations = _meter.CreateCounter<long>("flint.pool.invocations", "{invocation}",
            "Invocations by outcome: ok, pool_full, timeout, slot_died, garbage, launch_failed, draining");
        _invokeDuration = _meter.CreateHistogram<double>("flint.pool.invocation.duration", "ms",
            "From the invoke request to the result, queue wait included");
        _queueWait = _meter.CreateHistogram<double>("flint.pool.queue.wait", "ms", "Time an invocation waited for a slot");
        _slotsStarted = _meter.CreateCounter<long>("flint.pool.slots.started", "{slot}", "Slots that became ready");
        _slotsStopped = _meter.CreateCounter<long>("flint.pool.slots.stopped", "{slot}",
            "Slots stopped, by reason: recycled, idle, died, timeout, garbage, drained");
        _launchFailures = _meter.CreateCounter<long>("flint.pool.slots.launch_failures", "{slot}", "Slot starts that failed");
        _slotStart = _meter.CreateHistogram<double>("flint.pool.slot.start.duration", "ms",
            "From starting the jailer to the agent's first PONG, by source (boot or snapshot)");
        _meter.CreateObservableGauge("flint.pool.slots", () => Gauge(pools(), s => [
            ("idle", s.Idle), ("busy", s.Busy), ("starting", s.Starting)]), "{slot}", "Slots by state");
        _meter.CreateObservableGauge("flint.pool.waiting", () => Gauge(pools(), s => [("waiting", s.Waiting)]),
            "{invocation}", "Invocations waiting for a slot");
    }

    private static IEnumerable<Measurement<int>> Gauge(IEnumerable<FunctionPool> pools, Func<PoolCounts, (string, int)[]> pick)
    {
        foreach (var p in pools)
        {
            var c = p.Counts();
            foreach (var (state, v) in pick(c))
                yield return new Measurement<int>(v, new KeyValuePair<string, object?>("function", p.Name), new KeyValuePair<string, object?>("state", state));
        }
    }

    internal void Invoked(string function, string outcome, TimeSpan duration)
    {
        var f = new KeyValuePair<string, object?>("function", function);
        _invocations.Add(1, f, new KeyValuePair<string, object?>("outcome", outcome));
        _invokeDuration.Record(duration.TotalMilliseconds, f);
    }

    internal void Waited(string function, TimeSpan wait) =>
        _queueWait.Record(wait.TotalMilliseconds, new KeyValuePair<string, object?>("function", function));

    internal void SlotStarted(string function, bool snapshot, TimeSpan took)
    {
        var f = new KeyValuePair<string, object?>("function", function);
        _slotsStarted.Add(1, f);
        _slotStart.Record(took.TotalMilliseconds, f, new KeyValuePair<string, object?>("source", snapshot ? "snapshot" : "boot"));
    }

    internal void SlotStopped(string function, string reason) =>
        _slotsStopped.Add(1, new KeyValuePair<string, object?>("function", function), new KeyValuePair<string, object?>("reason", reason));

    internal void LaunchFailed(string function) => _launchFailures.Add(1, new KeyValuePair<string, object?>("function", function));

    public void Dispose() => _meter.Dispose();
}

/// <summary>A function's slots by state at one moment.</summary>
public readonly record struct PoolCounts(int Idle, int Busy, int Starting, int Waiting)
{
    public int Total => Idle + Busy + Starting;
}
