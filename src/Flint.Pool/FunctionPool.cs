namespace Flint.Pool;

/// <summary>
/// The warm slots of one function. Invariants, all under <see cref="_lock"/>:
/// <list type="bullet">
/// <item>a slot is in exactly one of: starting (counted in <see cref="_starting"/>), idle (<see cref="_idle"/>), busy
/// (<see cref="PooledSlot.Busy"/>), retiring (out of <see cref="_all"/>);</item>
/// <item><c>_all.Count + _starting &lt;= MaxSlots</c>: the pool grows under load up to the cap and no further;</item>
/// <item>a slot serves one invocation at a time: it is handed to one invoker and comes back only through
/// <see cref="Release"/> or <see cref="Fail"/>;</item>
/// <item>every wait is bounded: an invoker waits at most the queue timeout for a slot, then the invoke timeout for
/// the answer; a launch at most the ready timeout; a drain at most its grace plus the slots' own kill bound.</item>
/// </list>
/// A slot that times out, answers garbage or dies is killed, never reused, and replaced (up to <c>MinWarm</c>, or
/// on demand); its invoker gets a <see cref="PoolException"/> saying which of these happened.
/// </summary>
public sealed class FunctionPool
{
    private sealed class PooledSlot(ISlot slot, long now)
    {
        public readonly ISlot Slot = slot;
        public int Invocations;
        public long LastUsed = now;
        public bool Busy;
        public int Retired;
    }

    private readonly ISlotLauncher _launcher;
    private readonly PoolMetrics? _metrics;
    private readonly TimeProvider _time;
    private readonly Action<string>? _log;
    private readonly object _lock = new();
    private readonly List<PooledSlot> _idle = [];       // oldest first: invokers take the newest, expiry stops the oldest
    private readonly HashSet<PooledSlot> _all = [];     // idle + busy
    private readonly LinkedList<TaskCompletionSource<PooledSlot>> _waiters = new();
    private readonly List<Task> _background = [];       // launches and retirements in flight; a drain awaits them
    private readonly CancellationTokenSource _stop = new();
    private int _starting, _busy, _launchFailuresInARow;
    private long _nextWarmLaunch;
    private bool _draining;
    private long _slotSeq, _invokeSeq;
    private Task _maintenance = Task.CompletedTask;

    public FunctionPool(FunctionSpec spec, ISlotLauncher launcher, PoolMetrics? metrics = null, TimeProvider? time = null, Action<string>? log = null)
    {
        Spec = spec;
        _launcher = launcher;
        _metrics = metrics;
        _time = time ?? TimeProvider.System;
        _log = log;
    }

    public FunctionSpec Spec { get; }
    public string Name => Spec.Name;
    /// <summary>How often idle slots are checked (expiry, deaths) and the warm minimum restored.</summary>
    public TimeSpan MaintenanceInterval { get; init; } = TimeSpan.FromMilliseconds(250);
    public bool IsDraining { get { lock (_lock) return _draining; } }

    /// <summary>Starts the warm minimum and the maintenance loop.</summary>
    public void Start()
    {
        lock (_lock) EnsureMinWarmLocked();
        _maintenance = Task.Run(MaintainLoopAsync);
    }

    public PoolCounts Counts()
    {
        lock (_lock) return new PoolCounts(_idle.Count, _busy, _starting, _waiters.Count);
    }

    public IReadOnlyList<SlotInfo> Slots()
    {
        lock (_lock) return _all.Select(s => new SlotInfo(s.Slot.Id, s.Slot.Pid, s.Busy ? "busy" : "idle", s.Invocations)).OrderBy(s => s.Id, StringComparer.Ordinal).ToArray();
    }

    /// <summary>Flint's JSON metrics of one slot's VMM, or null when no such slot is up.</summary>
    public Task<string?> ReadSlotMetricsAsync(string slotId, CancellationToken ct)
    {
        ISlot? slot;
        lock (_lock) slot = _all.FirstOrDefault(s => s.Slot.Id == slotId)?.Slot;
        return slot == null ? Task.FromResult<string?>(null) : slot.ReadVmmMetricsAsync(ct);
    }

    public async Task<PoolInvokeResult> InvokeAsync(ReadOnlyMemory<byte> payload, CancellationToken ct = default)
    {
        long t0 = _time.GetTimestamp();
        if (payload.Length > Spec.MaxPayloadBytes)
            throw new PoolException(PoolErrorKind.BadRequest, $"The payload is {payload.Length} bytes, over function '{Name}''s limit of {Spec.MaxPayloadBytes}.");
        PooledSlot ps;
        try { ps = await AcquireAsync(ct); }
        catch (PoolException e)
        {
            _metrics?.Invoked(Name, Outcome(e.Kind), _time.GetElapsedTime(t0));
            throw;
        }
        _metrics?.Waited(Name, _time.GetElapsedTime(t0));
        string id = Interlocked.Increment(ref _invokeSeq).ToString(System.Globalization.CultureInfo.InvariantCulture);
        try
        {
            var r = await ps.Slot.InvokeAsync(id, payload, Spec.InvokeTimeout, ct);
            Release(ps);
            var took = _time.GetElapsedTime(t0);
            _metrics?.Invoked(Name, "ok", took);
            return new PoolInvokeResult(r.Status, r.Body, ps.Slot.Id, took);
        }
        catch (AgentException e)
        {
            var (kind, reason, what) = e.Failure switch
            {
                AgentFailure.Timeout => (PoolErrorKind.Timeout, "timeout", "the invocation timed out; the slot was killed and will be replaced"),
                AgentFailure.Closed => (PoolErrorKind.SlotDied, "died", "the slot's VM died during the invocation; it will be replaced"),
                _ => (PoolErrorKind.Garbage, "garbage", "the slot's agent broke the protocol; the slot was killed and will be replaced"),
            };
            Fail(ps, reason);
            _metrics?.Invoked(Name, Outcome(kind), _time.GetElapsedTime(t0));
            throw new PoolException(kind, $"Function '{Name}', slot {ps.Slot.Id}: {what} ({e.Message}).", e);
        }
        catch (OperationCanceledException)
        {
            // The invoker went away mid-exchange: the agent's state is unknown, so the slot is not reused.
            Fail(ps, "cancelled");
            throw;
        }
        catch (Exception e)
        {
            Fail(ps, "died");
            _log?.Invoke($"slot {ps.Slot.Id}: invocation failed: {e}");
            throw new PoolException(PoolErrorKind.SlotDied, $"Function '{Name}', slot {ps.Slot.Id}: the invocation failed; the slot will be replaced.", e);
        }
    }

    /// <summary>
    /// Stops taking invocations, fails the waiting ones, stops idle slots at once, lets running invocations finish for
    /// up to <paramref name="grace"/>, then kills whatever is left and waits for every slot's cleanup.
    /// </summary>
    public async Task DrainAsync(TimeSpan grace)
    {
        List<PooledSlot> idle;
        List<TaskCompletionSource<PooledSlot>> waiters;
        lock (_lock)
        {
            _draining = true;
            idle = [.. _idle];
            _idle.Clear();
            foreach (var s in idle) _all.Remove(s);
            waiters = [.. _waiters];
            _waiters.Clear();
        }
        _stop.Cancel(); // launches in progress give up; the maintenance loop ends
        foreach (var w in waiters) w.TrySetException(Draining());
        foreach (var s in idle) Track(RetireAsync(s, "drained"));

        long t0 = _time.GetTimestamp();
        while (_time.GetElapsedTime(t0) < grace)
        {
            lock (_lock) if (_busy == 0 && _starting == 0) break;
            await Task.Delay(10);
        }
        List<PooledSlot> left;
        lock (_lock)
        {
            left = [.. _all];
            _all.Clear();
        }
        foreach (var s in left) Track(RetireAsync(s, "drained"));
        try { await _maintenance; } catch (OperationCanceledException) { }
        // Launches still in flight finish (their cancellation is bounded by the launcher) and retire themselves.
        while (true)
        {
            Task[] pending;
            lock (_background)
            {
                _background.RemoveAll(t => t.IsCompleted);
                pending = [.. _background];
            }
            if (pending.Length == 0) break;
            try { await Task.WhenAll(pending).WaitAsync(TimeSpan.FromSeconds(60)); }
            catch (TimeoutException) { _log?.Invoke($"function {Name}: slot cleanup still running after 60 s"); break; }
            catch (Exception) { /* each task logs its own failure */ }
        }
    }

    private async Task<PooledSlot> AcquireAsync(CancellationToken ct)
    {
        TaskCompletionSource<PooledSlot> waiter;
        LinkedListNode<TaskCompletionSource<PooledSlot>> node;
        List<PooledSlot>? dead = null;
        PooledSlot? taken = null;
        lock (_lock)
        {
            if (_draining) throw Draining();
            while (_idle.Count > 0)
            {
                var s = _idle[^1];
                _idle.RemoveAt(_idle.Count - 1);
                if (s.Slot.Exited.IsCompleted)
                {
                    _all.Remove(s);
                    (dead ??= []).Add(s);
                    continue;
                }
                s.Busy = true;
                _busy++;
                taken = s;
                break;
            }
            if (dead != null) EnsureMinWarmLocked(ignoreBackoff: true);
            waiter = new TaskCompletionSource<PooledSlot>(TaskCreationOptions.RunContinuationsAsynchronously);
            node = taken == null ? _waiters.AddLast(waiter) : null!;
            if (taken == null) LaunchForWaitersLocked();
        }
        RetireAll(dead, "died"); // outside the lock: stopping a slot kills a process and removes its jail
        if (taken != null) return taken;
        try
        {
            return await waiter.Task.WaitAsync(Spec.QueueTimeout, _time, ct);
        }
        catch (TimeoutException)
        {
            lock (_lock)
            {
                if (node.List != null)
                {
                    _waiters.Remove(node);
                    throw new PoolException(PoolErrorKind.PoolFull,
                        $"Function '{Name}': all {Spec.MaxSlots} slots stayed busy for the queue timeout ({Spec.QueueTimeout.TotalMilliseconds:0} ms); try again later.");
                }
            }
            return await waiter.Task; // handed a slot (or an error) just as the wait ended
        }
        catch (OperationCanceledException)
        {
            bool handed;
            lock (_lock)
            {
                handed = node.List == null;
                if (!handed) _waiters.Remove(node);
            }
            if (handed && waiter.Task.IsCompletedSuccessfully) Release(waiter.Task.Result, countInvocation: false);
            throw;
        }
    }

    /// <summary>Back from a successful invocation: to the next waiter, to the idle list, or recycled.</summary>
    private void Release(PooledSlot ps, bool countInvocation = true)
    {
        string? retire = null;
        lock (_lock)
        {
            ps.Busy = false;
            _busy--;
            if (countInvocation) ps.Invocations++;
            if (_draining || !_all.Contains(ps)) { _all.Remove(ps); retire = "drained"; }
            else if (Spec.MaxInvocationsPerSlot > 0 && ps.Invocations >= Spec.MaxInvocationsPerSlot)
            {
                _all.Remove(ps);
                retire = "recycled";
                LaunchForWaitersLocked();
                EnsureMinWarmLocked(ignoreBackoff: true);
            }
            else OfferLocked(ps);
        }
        if (retire != null) Track(RetireAsync(ps, retire));
    }

    /// <summary>Back from a failed invocation: the slot is killed; a replacement starts if needed.</summary>
    private void Fail(PooledSlot ps, string reason)
    {
        lock (_lock)
        {
            ps.Busy = false;
            _busy--;
            _all.Remove(ps);
            if (!_draining)
            {
                LaunchForWaitersLocked();
                EnsureMinWarmLocked(ignoreBackoff: true);
            }
        }
        Track(RetireAsync(ps, reason));
    }

    /// <summary>A ready slot goes to the longest waiting invoker, else to the idle list.</summary>
    private void OfferLocked(PooledSlot ps)
    {
        ps.LastUsed = _time.GetTimestamp();
        while (_waiters.First is { } first)
        {
            _waiters.RemoveFirst();
            ps.Busy = true;
            _busy++;
            if (first.Value.TrySetResult(ps)) return;
            ps.Busy = false;
            _busy--;
        }
        _idle.Add(ps);
    }

    /// <summary>Grows the pool for waiting invokers: one launch per waiter not already covered, up to the cap.</summary>
    private void LaunchForWaitersLocked()
    {
        while (!_draining && _starting < _waiters.Count && _all.Count + _starting < Spec.MaxSlots) StartLaunchLocked();
    }

    /// <summary>Keeps MinWarm slots up or starting. After launch failures it backs off, so a function that cannot
    /// start does not spin up a jailer every maintenance tick.</summary>
    private void EnsureMinWarmLocked(bool ignoreBackoff = false)
    {
        if (_draining) return;
        if (!ignoreBackoff && _launchFailuresInARow > 0 && _time.GetTimestamp() < _nextWarmLaunch) return;
        while (_all.Count + _starting < Math.Min(Spec.MinWarm, Spec.MaxSlots)) StartLaunchLocked();
    }

    private void StartLaunchLocked()
    {
        _starting++;
        string id = $"{Name}-{++_slotSeq}";
        Track(Task.Run(() => LaunchAsync(id)));
    }

    private async Task LaunchAsync(string id)
    {
        long t0 = _time.GetTimestamp();
        ISlot slot;
        try
        {
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
            cts.CancelAfter(Spec.ReadyTimeout);
            try
            {
                slot = await _launcher.LaunchAsync(Spec, id, cts.Token);
            }
            catch (OperationCanceledException) when (!_stop.IsCancellationRequested)
            {
                throw new PoolException(PoolErrorKind.LaunchFailed, $"Function '{Name}': slot {id} was not ready within {Spec.ReadyTimeout.TotalSeconds:0.#} s.");
            }
        }
        catch (Exception e)
        {
            _metrics?.LaunchFailed(Name);
            var err = e as PoolException ?? new PoolException(PoolErrorKind.LaunchFailed, $"Function '{Name}': slot {id} failed to start.", e);
            if (err.Kind != PoolErrorKind.LaunchFailed) err = new PoolException(PoolErrorKind.LaunchFailed, err.Message, e);
            _log?.Invoke($"slot {id}: launch failed: {(e is PoolException ? e.Message : e.ToString())}");
            lock (_lock)
            {
                _starting--;
                _launchFailuresInARow++;
                double backoff = Math.Min(30_000, 250 * Math.Pow(2, Math.Min(_launchFailuresInARow - 1, 10)));
                _nextWarmLaunch = _time.GetTimestamp() + (long)(backoff / 1000 * _time.TimestampFrequency);
                // An invoker no other launch in flight will serve hears why now instead of at its queue timeout.
                if (_waiters.Count > _starting && _waiters.First is { } first)
                {
                    _waiters.RemoveFirst();
                    first.Value.TrySetException(err);
                }
            }
            return;
        }
        _metrics?.SlotStarted(Name, Spec.IsSnapshot, _time.GetElapsedTime(t0));
        var ps = new PooledSlot(slot, _time.GetTimestamp());
        bool drained;
        lock (_lock)
        {
            _starting--;
            _launchFailuresInARow = 0;
            drained = _draining;
            if (!drained)
            {
                _all.Add(ps);
                OfferLocked(ps);
            }
        }
        if (drained) { await RetireAsync(ps, "drained"); return; }
        // A slot that dies while idle is noticed at once, not at the next invoke or maintenance tick.
        _ = slot.Exited.ContinueWith(_ => OnExited(ps), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    private void OnExited(PooledSlot ps)
    {
        lock (_lock)
        {
            if (ps.Busy || !_idle.Remove(ps)) return; // a busy slot's invoker sees the death itself
            _all.Remove(ps);
            EnsureMinWarmLocked(ignoreBackoff: true);
        }
        Track(RetireAsync(ps, "died"));
    }

    private async Task MaintainLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            try { await Task.Delay(MaintenanceInterval, _time, _stop.Token); }
            catch (OperationCanceledException) { return; }
            Maintain();
        }
    }

    /// <summary>Stops idle slots past the idle timeout (oldest first, never below MinWarm) and dead ones, and
    /// restores the warm minimum.</summary>
    internal void Maintain()
    {
        var stop = new List<(PooledSlot, string)>();
        lock (_lock)
        {
            if (_draining) return;
            long now = _time.GetTimestamp();
            for (int i = 0; i < _idle.Count;)
            {
                var s = _idle[i];
                string? why = s.Slot.Exited.IsCompleted ? "died"
                    : _time.GetElapsedTime(s.LastUsed, now) > Spec.IdleTimeout && _all.Count + _starting > Spec.MinWarm ? "idle"
                    : null;
                if (why == null) { i++; continue; }
                _idle.RemoveAt(i);
                _all.Remove(s);
                stop.Add((s, why));
            }
            EnsureMinWarmLocked();
        }
        foreach (var (s, why) in stop) Track(RetireAsync(s, why));
    }

    private void RetireAll(List<PooledSlot>? slots, string reason)
    {
        if (slots == null) return;
        foreach (var s in slots) Track(RetireAsync(s, reason));
    }

    private async Task RetireAsync(PooledSlot ps, string reason)
    {
        if (Interlocked.Exchange(ref ps.Retired, 1) == 1) return;
        try { await ps.Slot.DisposeAsync(); }
        catch (Exception e) { _log?.Invoke($"slot {ps.Slot.Id}: cleanup failed: {e}"); }
        _metrics?.SlotStopped(Name, reason);
    }

    private void Track(Task t)
    {
        lock (_background)
        {
            if (_background.Count > 64) _background.RemoveAll(x => x.IsCompleted);
            _background.Add(t);
        }
    }

    private PoolException Draining() => new(PoolErrorKind.Draining, $"Function '{Name}' is being drained.");

    private static string Outcome(PoolErrorKind k) => k switch
    {
        PoolErrorKind.PoolFull => "pool_full",
        PoolErrorKind.Timeout => "timeout",
        PoolErrorKind.SlotDied => "slot_died",
        PoolErrorKind.Garbage => "garbage",
        PoolErrorKind.LaunchFailed => "launch_failed",
        PoolErrorKind.Draining => "draining",
        _ => "error",
    };
}

/// <summary>One slot as <c>GET /functions/{name}</c> shows it.</summary>
public sealed record SlotInfo(string Id, int Pid, string State, int Invocations);
