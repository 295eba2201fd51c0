using Flint.Snapshot;
using Flint.Sys;

namespace Flint.Devices.RateLimiting;

/// <summary>Which bucket a consumption draws from.</summary>
public enum TokenType
{
    Bytes,
    Ops,
}

/// <summary>
/// A device's rate limiter (Firecracker's): an optional bandwidth bucket (bytes) and an optional ops bucket.
/// When a consume fails the limiter blocks and arms its timerfd for <see cref="RefillTimerIntervalMs"/>; a request
/// larger than a bucket is allowed once and blocks the limiter for the time that bucket needs to earn the excess.
/// While blocked every consume fails. The timer is an <see cref="EventSource"/> for the event loop; its handler
/// clears the blocked state and calls <see cref="OnUnblocked"/>, where the device resumes its queue.
/// One limiter belongs to one device. Consume runs on the event loop, Update on the API thread: a private lock
/// serialises them (uncontended, no allocation).
/// </summary>
public sealed class RateLimiter : IEventSources, IDisposable
{
    /// <summary>Firecracker's REFILL_TIMER_INTERVAL_MS: how long a failed consume blocks the device.</summary>
    public const int RefillTimerIntervalMs = 100;

    private readonly Lock _lock = new();
    private readonly IClock _clock;
    private readonly TimerFd _timer;
    private readonly EventSource[] _sources;
    private TokenBucket? _bandwidth;
    private TokenBucket? _ops;
    private bool _timerActive;
    private long _timerEvents;

    public RateLimiter(TokenBucketConfig? bandwidth, TokenBucketConfig? ops, IClock? clock = null)
    {
        _clock = clock ?? MonotonicClock.Instance;
        _bandwidth = Make(bandwidth);
        _ops = Make(ops);
        _timer = new TimerFd();
        _sources = [new EventSource(_timer.Fd, OnTimerReady)];
    }

    public RateLimiter(RateLimiterConfig config, IClock? clock = null) : this(config.Bandwidth, config.Ops, clock) { }

    /// <summary>Called on the event-loop thread after the timer unblocked the limiter: resume the queue here.</summary>
    public Action? OnUnblocked { get; set; }

    /// <summary>The refill timer: register it on the event loop.</summary>
    public IReadOnlyList<EventSource> EventSources => _sources;

    public int TimerFd => _timer.Fd;

    /// <summary>True while the refill timer is pending: every consume fails until it fires.</summary>
    public bool IsBlocked { get { lock (_lock) return _timerActive; } }

    /// <summary>Timer events handled (Firecracker's rate_limiter_event_count is the device's view of this).</summary>
    public long TimerEventCount => Interlocked.Read(ref _timerEvents);

    /// <summary>True when neither bucket limits anything.</summary>
    public bool IsUnlimited { get { lock (_lock) return _bandwidth == null && _ops == null; } }

    /// <summary>The active buckets' configuration (null for a disabled bucket).</summary>
    public RateLimiterConfig Config
    {
        get { lock (_lock) return new RateLimiterConfig(_bandwidth?.Config, _ops?.Config); }
    }

    /// <summary>Remaining (burst, budget) of a bucket, for tests and diagnostics; null when the bucket is disabled.</summary>
    public (ulong OneTimeBurst, ulong Budget)? BucketState(TokenType type)
    {
        lock (_lock) return Bucket(type) is { } b ? (b.OneTimeBurst, b.Budget) : null;
    }

    /// <summary>
    /// Takes <paramref name="tokens"/> of <paramref name="type"/>. False while blocked or when the bucket is short
    /// (the limiter then blocks for 100 ms). A request larger than the bucket succeeds and blocks the limiter
    /// for the excess's refill time. A disabled bucket always succeeds.
    /// </summary>
    public bool Consume(ulong tokens, TokenType type)
    {
        lock (_lock)
        {
            if (_timerActive) return false;
            var b = Bucket(type);
            if (b == null) return true;
            switch (b.Reduce(tokens, out ulong excess))
            {
                case BucketReduction.Success:
                    return true;
                case BucketReduction.OverConsumption:
                    ArmLocked(b.RefillDurationNs(excess));
                    return true;
                default:
                    ArmLocked((ulong)RefillTimerIntervalMs * TokenBucket.NanosPerMilli);
                    return false;
            }
        }
    }

    /// <summary>Gives tokens back to a bucket (undoing part of a request). False when that bucket is disabled.</summary>
    public bool ManualReplenish(ulong tokens, TokenType type)
    {
        lock (_lock)
        {
            var b = Bucket(type);
            if (b == null) return false;
            b.ForceReplenish(tokens);
            return true;
        }
    }

    /// <summary>
    /// The usual device charge: 1 op, then <paramref name="bytes"/>. When the bytes are refused the op is given
    /// back, so a throttled request costs nothing and is charged in full when retried.
    /// </summary>
    public bool ConsumeRequest(ulong bytes)
    {
        if (!Consume(1, TokenType.Ops)) return false;
        if (bytes == 0 || Consume(bytes, TokenType.Bytes)) return true;
        ManualReplenish(1, TokenType.Ops);
        return false;
    }

    /// <summary>
    /// PATCH: for each bucket, null leaves it as it is, a disabled config (size or refill_time 0) removes it,
    /// anything else replaces it with a fresh, full bucket.
    /// </summary>
    public void Update(TokenBucketConfig? bandwidth, TokenBucketConfig? ops)
    {
        lock (_lock)
        {
            if (bandwidth != null) _bandwidth = Make(bandwidth);
            if (ops != null) _ops = Make(ops);
        }
    }

    public void Update(RateLimiterConfig config) => Update(config.Bandwidth, config.Ops);

    /// <summary>
    /// Firecracker's RateLimiterState: each bucket (present or not) with its tokens left and time since its last
    /// update. The refill timer is not saved: a restored limiter starts unblocked, as Firecracker's does (the restore
    /// looks at every live queue once, and a request still short of tokens blocks it again).
    /// </summary>
    public void SaveState(StateWriter w)
    {
        lock (_lock)
        {
            WriteBucket(w, _bandwidth);
            WriteBucket(w, _ops);
        }
    }

    /// <summary>Replaces both buckets with the saved ones (configuration included: a PATCH before the save counts).</summary>
    public void RestoreState(StateReader r)
    {
        var bandwidth = ReadBucket(r);
        var ops = ReadBucket(r);
        lock (_lock)
        {
            _bandwidth = bandwidth == null ? null : new TokenBucket(bandwidth, _clock);
            _ops = ops == null ? null : new TokenBucket(ops, _clock);
        }
    }

    private static void WriteBucket(StateWriter w, TokenBucket? b)
    {
        w.Bool(b != null);
        b?.State.Write(w);
    }

    private static TokenBucketState? ReadBucket(StateReader r) => r.Bool() ? TokenBucketState.Read(r) : null;

    /// <summary>
    /// The timer fired: consume its expiry and unblock. False (still blocked) for a spurious wake-up with no
    /// expiry. Does not call <see cref="OnUnblocked"/>; the event source's handler does.
    /// </summary>
    public bool HandleTimerEvent()
    {
        Interlocked.Increment(ref _timerEvents);
        lock (_lock)
        {
            if (_timer.Read() == 0) return false;
            _timerActive = false;
            return true;
        }
    }

    private void OnTimerReady(uint events)
    {
        if (HandleTimerEvent()) OnUnblocked?.Invoke();
    }

    private TokenBucket? Bucket(TokenType type) => type == TokenType.Bytes ? _bandwidth : _ops;

    private TokenBucket? Make(TokenBucketConfig? c) => c == null || c.IsDisabled ? null : new TokenBucket(c, _clock);

    private void ArmLocked(ulong ns)
    {
        // TimerFd works in TimeSpan ticks (100 ns); zero would disarm, and the tick count must survive * 100.
        ulong ticks = Math.Clamp(ns / 100, 1UL, (ulong)(long.MaxValue / 100));
        _timer.Arm(TimeSpan.FromTicks((long)ticks));
        _timerActive = true;
    }

    public void Dispose() => _timer.Dispose();
}
