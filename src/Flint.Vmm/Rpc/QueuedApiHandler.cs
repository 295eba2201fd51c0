using Flint.Sys;

namespace Flint.Vmm.Rpc;

/// <summary>
/// Hands API requests from the API thread to the VMM thread. <see cref="Handle"/> (API thread) queues the action,
/// rings <see cref="EventFd"/> and blocks until the VMM thread, woken by that fd in its epoll loop, calls
/// <see cref="ProcessPending"/>, which runs the inner handler (normally a <see cref="VmmController"/>) and answers.
/// </summary>
public sealed class QueuedApiHandler : IApiHandler, IDisposable
{
    /// <summary>
    /// One caller's request in flight. Each calling thread keeps one and reuses it (a caller blocks until its answer,
    /// so its one waiter is never queued twice): no allocation per request. The caller sleeps on <see cref="Done"/>,
    /// a futex flag: one futex call on each side per request, where Monitor.Wait/PulseAll made about four.
    /// </summary>
    private sealed class Pending
    {
        public VmmAction? Action;
        /// <summary>Written by the VMM thread before it sets <see cref="Done"/>; read by the caller after.</summary>
        public ApiResponse? Response;
        public readonly FutexFlag Done = new();
        /// <summary>Set under the queue lock when the VMM thread dequeues it: from then on it runs, whatever the caller does.</summary>
        public bool Taken;
        /// <summary>When it was taken (Environment.TickCount64): the run bound counts from here.</summary>
        public long TakenAtMs;
    }

    /// <summary>How long a request may wait in the queue before the VMM thread takes it.</summary>
    public static readonly TimeSpan DefaultQueueTimeout = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long a taken request may run. Generous: an InstanceStart or a snapshot of a large guest takes seconds,
    /// and the answer must not claim a failure that did not happen unless the VMM is truly stuck.
    /// </summary>
    public static readonly TimeSpan DefaultRunTimeout = TimeSpan.FromMinutes(5);

    public const string NotTakenMessage = "The VMM did not take the request in time; it was not run.";
    public const string NotFinishedMessage = "The VMM did not finish the request in time; its outcome is unknown.";

    [ThreadStatic] private static Pending? t_pending;

    private readonly IApiHandler _inner;
    private readonly Queue<Pending> _queue = new();
    private readonly object _lock = new();
    private readonly EventFd _eventFd = new(nonBlocking: true);
    private bool _disposed;
    /// <summary>Whether the queue may hold a request: set by a caller after it queued one, set to the queue's length by the
    /// VMM thread under the lock; read without the lock by a lingering VMM thread.</summary>
    private volatile int _queued;

    private readonly TimeSpan _queueTimeout, _runTimeout;

    public QueuedApiHandler(IApiHandler inner) : this(inner, DefaultQueueTimeout, DefaultRunTimeout) { }

    /// <summary>Every wait of the API thread is bounded: by <paramref name="queueTimeout"/> until the VMM thread takes
    /// the request, then by <paramref name="runTimeout"/> until it answers.</summary>
    public QueuedApiHandler(IApiHandler inner, TimeSpan queueTimeout, TimeSpan runTimeout)
    {
        _inner = inner;
        _queueTimeout = queueTimeout;
        _runTimeout = runTimeout;
    }

    /// <summary>The eventfd to register (EPOLLIN) in the VMM thread's epoll loop; call <see cref="ProcessPending"/> when it fires.</summary>
    public int Fd => _eventFd.Fd;
    public EventFd EventFd => _eventFd;

    /// <summary>
    /// API thread: queue the action and wait for the VMM thread's answer. A VMM thread that does not take the request
    /// in time gets it withdrawn (503, nothing ran); one that takes it and does not finish in time leaves the outcome
    /// unknown (504), and this thread's waiter is given up so a late answer cannot land in a later request.
    /// </summary>
    public ApiResponse Handle(VmmAction action)
    {
        var p = t_pending ??= new Pending();
        p.Action = action;
        p.Response = null;
        p.Taken = false;
        p.Done.Reset();
        lock (_lock)
        {
            if (_disposed) return ApiResponse.Fault("The VMM is shutting down.", 503);
            _queue.Enqueue(p);
        }
        // The hint for a lingering VMM thread, set after the lock is released: set inside, the VMM thread saw it at once
        // and met the lock still held, and that contention on every request ran the runtime's slow lock path (its
        // code alone took 200-400 KiB more of the binary into memory). A stale 1 costs the VMM thread one empty pass.
        _queued = 1;
        _eventFd.Write(1);
        SpinForAnswer(p);
        // The VMM thread wakes this thread once, with the answer; not also when it takes the request (that second
        // wake-up cost every request a context switch). So until the request is taken, the wait is cut into slices no
        // longer than the run bound, and the run bound counts from the moment it was taken.
        var queued = Deadline.After(_queueTimeout);
        long runMs = (long)_runTimeout.TotalMilliseconds;
        while (!p.Done.IsSet)
        {
            long waitMs;
            if (Volatile.Read(ref p.Taken))
            {
                waitMs = Volatile.Read(ref p.TakenAtMs) + runMs - Environment.TickCount64;
                if (waitMs <= 0) break;
            }
            else
            {
                waitMs = Math.Min(queued.MillisecondsLeft, runMs);
                if (waitMs <= 0 && TryWithdraw(p))
                {
                    p.Action = null;
                    return ApiResponse.Fault(NotTakenMessage, 503);
                }
            }
            p.Done.Wait((int)Math.Clamp(waitMs, 1, int.MaxValue));
        }
        if (!p.Done.IsSet || p.Response is not { } r)
        {
            Logging.Logger.Error($"API request {action.GetType().Name} did not finish within {_runTimeout.TotalSeconds:0} s");
            t_pending = null; // the VMM thread may still answer into this one
            return ApiResponse.Fault(NotFinishedMessage, 504);
        }
        // Let go of the action and answer: the waiter outlives this request.
        p.Response = null;
        p.Action = null;
        return r;
    }

    /// <summary>
    /// How long the caller spins for the answer before it sleeps on the futex. A configuration request takes the VMM
    /// thread a few microseconds once it is awake; spinning through that saves the caller's own wake-up (a futex wake
    /// and a context switch back), which on a loaded host is a third of the round trip. Bounded and short: a request
    /// that takes longer (InstanceStart, a snapshot) costs at most this much CPU before the caller sleeps.
    /// </summary>
    internal static readonly long SpinTicks = System.Diagnostics.Stopwatch.Frequency * 40 / 1_000_000; // 40 us

    /// <summary>Spins (no system call) until the answer is set or <see cref="SpinTicks"/> pass; not on one CPU, where
    /// spinning would keep the VMM thread from running.</summary>
    private static void SpinForAnswer(Pending p)
    {
        if (s_singleCpu) return;
        long end = System.Diagnostics.Stopwatch.GetTimestamp() + SpinTicks;
        while (!p.Done.IsSet && System.Diagnostics.Stopwatch.GetTimestamp() < end) System.Runtime.Intrinsics.X86.X86Base.Pause();
    }

    private static readonly bool s_singleCpu = Environment.ProcessorCount < 2;

    /// <summary>Takes <paramref name="p"/> out of the queue if the VMM thread has not dequeued it yet.</summary>
    private bool TryWithdraw(Pending p)
    {
        lock (_lock)
        {
            if (p.Taken || !_queue.Contains(p)) return false;
            int n = _queue.Count;
            for (int i = 0; i < n; i++)
            {
                var q = _queue.Dequeue();
                if (!ReferenceEquals(q, p)) _queue.Enqueue(q);
            }
            _queued = _queue.Count;
            return true;
        }
    }

    /// <summary>
    /// VMM thread before the VM exists: answers what is queued, then keeps watching the queue for
    /// <paramref name="linger"/> (spinning, no system call) and answers a request that arrives meanwhile at once. A
    /// client configuring a VM sends its requests back to back, and each would otherwise pay this thread's wake-up
    /// from epoll. Not on one CPU (the spin would keep the API thread from running). Returns how many were handled.
    /// </summary>
    public int ProcessPendingAndLinger(TimeSpan linger)
    {
        int n = ProcessPending();
        if (s_singleCpu) return n;
        long ticks = (long)(linger.TotalSeconds * System.Diagnostics.Stopwatch.Frequency);
        long end = System.Diagnostics.Stopwatch.GetTimestamp() + ticks;
        while (System.Diagnostics.Stopwatch.GetTimestamp() < end)
        {
            if (_queued == 0)
            {
                System.Runtime.Intrinsics.X86.X86Base.Pause(); // an instruction, not a runtime call: no code of its own to fault in
                continue;
            }
            n += ProcessPending();
            end = System.Diagnostics.Stopwatch.GetTimestamp() + ticks;
        }
        return n;
    }

    /// <summary>VMM thread: drain the eventfd and answer every queued request; returns how many were handled.</summary>
    public int ProcessPending()
    {
        _eventFd.Read();
        int n = 0;
        while (true)
        {
            Pending? p;
            lock (_lock)
            {
                if (!_queue.TryDequeue(out p)) break;
                _queued = _queue.Count;
                Volatile.Write(ref p.TakenAtMs, Environment.TickCount64);
                p.Taken = true;
            }
            ApiResponse r;
            try { r = _inner.Handle(p.Action!); }
            catch (Exception e)
            {
                // A bug in the handler: the VMM thread carries on, the client gets a 500 without .NET text.
                Logging.Logger.Error($"API request {p.Action!.GetType().Name} hit an internal error: {e}");
                r = ApiResponse.Fault(VmmController.InternalErrorMessage, 500);
            }
            Answer(p, r);
            n++;
        }
        return n;
    }

    private static void Answer(Pending p, ApiResponse r)
    {
        p.Response = r;
        p.Done.SetAndWake(); // a full barrier: the caller that sees Done sees Response
    }

    /// <summary>Refuses queued and later requests (the VMM is exiting) and closes the eventfd.</summary>
    public void Dispose()
    {
        List<Pending> left;
        lock (_lock)
        {
            if (_disposed) return;
            _disposed = true;
            left = [.. _queue];
            _queue.Clear();
            _queued = 0;
        }
        foreach (var p in left) Answer(p, ApiResponse.Fault("The VMM is shutting down.", 503));
        _eventFd.Dispose();
    }
}
