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
    /// One caller's request in flight. Each calling thread keeps one and reuses it: a new object per request that is
    /// Monitor.Wait-ed on costs, under NativeAOT, a sync-table entry and a ConditionalWeakTable condition per
    /// request, and those piled up (RSS grew from 5 to 93 MB over 1.3 M `GET /`). A caller blocks until its answer,
    /// so its one waiter is never queued twice.
    /// </summary>
    private sealed class Pending
    {
        public VmmAction? Action;
        public ApiResponse? Response;
    }

    [ThreadStatic] private static Pending? t_pending;

    private readonly IApiHandler _inner;
    private readonly Queue<Pending> _queue = new();
    private readonly object _lock = new();
    private readonly EventFd _eventFd = new(nonBlocking: true);
    private bool _disposed;

    public QueuedApiHandler(IApiHandler inner) => _inner = inner;

    /// <summary>The eventfd to register (EPOLLIN) in the VMM thread's epoll loop; call <see cref="ProcessPending"/> when it fires.</summary>
    public int Fd => _eventFd.Fd;
    public EventFd EventFd => _eventFd;

    /// <summary>API thread: queue the action and wait for the VMM thread's answer.</summary>
    public ApiResponse Handle(VmmAction action)
    {
        var p = t_pending ??= new Pending();
        p.Action = action;
        p.Response = null;
        lock (_lock)
        {
            if (_disposed) return ApiResponse.Fault("The VMM is shutting down.", 503);
            _queue.Enqueue(p);
        }
        _eventFd.Write(1);
        ApiResponse r;
        lock (p)
        {
            while (p.Response == null) Monitor.Wait(p);
            r = p.Response;
            // Let go of the action and answer: the waiter outlives this request.
            p.Response = null;
            p.Action = null;
        }
        return r;
    }

    /// <summary>VMM thread: drain the eventfd and answer every queued request; returns how many were handled.</summary>
    public int ProcessPending()
    {
        _eventFd.Read();
        int n = 0;
        while (true)
        {
            Pending? p;
            lock (_lock) { if (!_queue.TryDequeue(out p)) break; }
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
        lock (p)
        {
            p.Response = r;
            Monitor.PulseAll(p);
        }
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
        }
        foreach (var p in left) Answer(p, ApiResponse.Fault("The VMM is shutting down.", 503));
        _eventFd.Dispose();
    }
}
