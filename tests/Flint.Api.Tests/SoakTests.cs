using Flint.Sys;
using Flint.Vmm.Rpc;

namespace Flint.Api.Tests;

/// <summary>
/// What a long-lived API server keeps per request must be nothing: 1.3 M `GET /` once grew flint's RSS from 5 to
/// 93 MB. These tests pin the per-request path at zero allocations on the API thread; bench/api-soak.py measures
/// the real binary's RSS over a million requests.
/// </summary>
public class SoakTests
{
    private static readonly ApiResponse Cached = ApiResponse.Ok("{\"id\":\"x\"}");

    /// <summary>
    /// The API thread hands each request to the VMM thread and waits for its answer. It used to make a new waiter
    /// object per request and Monitor.Wait on it; under NativeAOT every such object gets a sync-table entry and a
    /// ConditionalWeakTable condition, which is where the RSS went. One waiter per calling thread, reused, allocates
    /// nothing.
    /// </summary>
    [Fact]
    public void Queued_handler_allocates_nothing_per_request_on_the_calling_thread()
    {
        using var queued = new QueuedApiHandler(new ConstHandler());
        using var vmm = new VmmThread(queued);
        for (int i = 0; i < 200; i++) Assert.Same(Cached, queued.Handle(new GetVmInstanceInfo()));
        var action = new GetVmInstanceInfo();
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 5_000; i++) queued.Handle(action);
        long perRequest = (GC.GetAllocatedBytesForCurrentThread() - before) / 5_000;
        Assert.Equal(0, perRequest);
    }

    [Fact]
    public void Serving_keep_alive_GETs_allocates_nothing_on_the_API_thread()
    {
        var h = new MeasuringHandler();
        using var env = new Env(server: true, handler: h);
        using var c = env.Connect();
        for (int i = 0; i < 300; i++) Assert.Equal(200, c.Call("GET", "/").Status);
        h.Mark();
        for (int i = 0; i < 2_000; i++) c.Call("GET", "/");
        Assert.Equal(0, h.SinceMark / 2_000);
    }

    private sealed class ConstHandler : IApiHandler
    {
        public ApiResponse Handle(VmmAction action) => Cached;
    }

    /// <summary>Runs on the API thread: reads that thread's allocation counter at each request.</summary>
    private sealed class MeasuringHandler : IApiHandler
    {
        private long _mark, _last;
        public ApiResponse Handle(VmmAction action)
        {
            Volatile.Write(ref _last, GC.GetAllocatedBytesForCurrentThread());
            return Cached;
        }
        public void Mark() => _mark = Volatile.Read(ref _last);
        public long SinceMark => Volatile.Read(ref _last) - _mark;
    }

    /// <summary>Stands in for flint's VMM thread: polls the queue's eventfd and answers.</summary>
    private sealed class VmmThread : IDisposable
    {
        private readonly Thread _t;
        private volatile bool _stop;
        public VmmThread(QueuedApiHandler q)
        {
            _t = new Thread(() =>
            {
                using var ep = new Epoll();
                ep.Add(q.Fd, 1);
                var evs = new EpollEvent[4];
                while (!_stop) if (ep.Wait(evs, 50) > 0) q.ProcessPending();
            })
            { Name = "fc_vmm", IsBackground = true };
            _t.Start();
        }
        public void Dispose() { _stop = true; _t.Join(); }
    }
}
