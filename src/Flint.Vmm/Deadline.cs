namespace Flint.Vmm;

/// <summary>
/// A point in monotonic time by which a wait must end: several waits in a row (one per vCPU) share one budget
/// instead of each getting the whole timeout.
/// </summary>
public readonly struct Deadline
{
    private readonly long _endMs;

    public TimeSpan Budget { get; }

    private Deadline(TimeSpan budget)
    {
        Budget = budget;
        _endMs = Environment.TickCount64 + (long)budget.TotalMilliseconds;
    }

    public static Deadline After(TimeSpan budget) => new(budget);

    /// <summary>What is left, clamped to [0, int.MaxValue] for Monitor.Wait.</summary>
    public int MillisecondsLeft => (int)Math.Clamp(_endMs - Environment.TickCount64, 0, int.MaxValue);
}
