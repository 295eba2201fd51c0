using Flint.Vmm.Rpc;

namespace Flint.Api.Tests;

/// <summary>
/// The API thread's wait for the VMM thread is bounded (hardening: "every wait is bounded"). Before, a VMM thread
/// that never drained the queue, or one stuck inside a request, kept the API thread in Monitor.Wait forever.
/// </summary>
public sealed class QueuedApiHandlerBoundTests
{
    private static readonly TimeSpan Short = TimeSpan.FromMilliseconds(300);

    [Fact]
    public async Task A_request_the_VMM_thread_never_takes_is_withdrawn_with_a_503_and_never_runs()
    {
        var inner = new CountingHandler();
        using var queued = new QueuedApiHandler(inner, Short, TimeSpan.FromSeconds(30));
        var r = await Task.Run(() => queued.Handle(new GetVersion())).WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(503, r.Status);
        Assert.Contains(QueuedApiHandler.NotTakenMessage, r.Body);
        // The VMM thread wakes up late: the withdrawn request is not run behind the client's back.
        Assert.Equal(0, queued.ProcessPending());
        Assert.Equal(0, inner.Calls);
    }

    [Fact]
    public async Task A_request_stuck_in_the_VMM_thread_answers_504_and_a_late_answer_does_not_leak_into_the_next()
    {
        using var release = new ManualResetEventSlim();
        var inner = new CountingHandler { Gate = release };
        using var queued = new QueuedApiHandler(inner, TimeSpan.FromSeconds(30), Short);
        var vmm = new Thread(() => { while (inner.Calls < 2) queued.ProcessPending(); }) { IsBackground = true };
        vmm.Start();
        // One API thread, as the server has: the stuck request and the next one come from the same thread.
        var answers = await Task.Factory.StartNew(() =>
        {
            var first = queued.Handle(new GetVersion());
            release.Set(); // the stuck request now finishes and answers into the abandoned waiter
            Thread.Sleep(100);
            inner.Gate = null;
            var second = queued.Handle(new GetVmInstanceInfo());
            return (first, second);
        }, TaskCreationOptions.LongRunning).WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(504, answers.first.Status);
        Assert.Contains(QueuedApiHandler.NotFinishedMessage, answers.first.Body);
        Assert.Equal(200, answers.second.Status);
        Assert.Equal("second", answers.second.Body);
        Assert.True(vmm.Join(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public void A_slow_but_taken_request_is_not_withdrawn_when_the_queue_bound_passes()
    {
        // Runs for twice the queue bound once taken.
        var inner = new CountingHandler { Delay = TimeSpan.FromSeconds(2) };
        using var queued = new QueuedApiHandler(inner, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(30));
        using var running = new ManualResetEventSlim();
        var vmm = new Thread(() => { running.Set(); while (inner.Calls < 1) queued.ProcessPending(); }) { IsBackground = true };
        vmm.Start();
        Assert.True(running.Wait(TimeSpan.FromSeconds(10)));
        var r = queued.Handle(new GetVersion());
        Assert.Equal(200, r.Status);
        Assert.True(vmm.Join(TimeSpan.FromSeconds(10)));
    }

    internal sealed class CountingHandler : IApiHandler
    {
        private int _calls;
        public int Calls => Volatile.Read(ref _calls);
        public ManualResetEventSlim? Gate { get; set; }
        public TimeSpan Delay { get; init; }

        public ApiResponse Handle(VmmAction action)
        {
            int n = Interlocked.Increment(ref _calls);
            Gate?.Wait(TimeSpan.FromSeconds(20));
            if (Delay > TimeSpan.Zero) Thread.Sleep(Delay);
            return new ApiResponse(200, n == 1 ? "first" : "second");
        }
    }
}
