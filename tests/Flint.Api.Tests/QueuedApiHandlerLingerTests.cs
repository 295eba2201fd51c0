using Flint.Vmm.Rpc;

namespace Flint.Api.Tests;

/// <summary>
/// Before the VM exists the VMM thread keeps watching the queue a moment after answering
/// (<see cref="QueuedApiHandler.ProcessPendingAndLinger"/>), so a client's next configuration request is answered
/// without waiting for the VMM thread to wake from epoll: a request that arrives within the linger is answered by the
/// same call, and one that comes later is left for the next wake-up.
/// </summary>
public sealed class QueuedApiHandlerLingerTests
{
    [Fact]
    public async Task A_request_that_arrives_while_the_VMM_thread_lingers_is_answered_by_the_same_call()
    {
        if (Environment.ProcessorCount < 2) return; // no linger on one CPU
        var inner = new QueuedApiHandlerBoundTests.CountingHandler();
        using var queued = new QueuedApiHandler(inner);
        var first = Task.Factory.StartNew(() => queued.Handle(new GetVersion()), TaskCreationOptions.LongRunning);
        // The VMM thread's wake-up for the first request, lingering long enough for a second one.
        var second = Task.Factory.StartNew(() =>
        {
            Thread.Sleep(50);
            return queued.Handle(new GetVmInstanceInfo());
        }, TaskCreationOptions.LongRunning);
        int handled = await Task.Factory.StartNew(() => queued.ProcessPendingAndLinger(TimeSpan.FromSeconds(2)), TaskCreationOptions.LongRunning)
            .WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(2, handled);
        Assert.Equal(200, (await first.WaitAsync(TimeSpan.FromSeconds(10))).Status);
        Assert.Equal(200, (await second.WaitAsync(TimeSpan.FromSeconds(10))).Status);
        Assert.Equal(2, inner.Calls);
    }

    [Fact]
    public void With_nothing_queued_the_linger_ends_on_time_and_handles_nothing()
    {
        var inner = new QueuedApiHandlerBoundTests.CountingHandler();
        using var queued = new QueuedApiHandler(inner);
        var sw = System.Diagnostics.Stopwatch.StartNew();
        Assert.Equal(0, queued.ProcessPendingAndLinger(TimeSpan.FromMilliseconds(20)));
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(5), $"lingered {sw.Elapsed.TotalMilliseconds:F0} ms");
        Assert.Equal(0, inner.Calls);
    }
}
