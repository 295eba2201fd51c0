using System.Diagnostics;
using System.Text;
using Flint.Pool;

namespace Flint.Pool.Tests;

/// <summary>The pool's scheduling without VMs: fake slots that answer, hang, break the protocol or die.</summary>
public sealed class FunctionPoolTests
{
    private static FunctionSpec Spec(int minWarm = 1, int maxSlots = 4, int maxInvocations = 0, int idleMs = 60_000,
        int invokeMs = 2_000, int queueMs = 2_000) => new()
        {
            Name = "fn", KernelPath = "/k", MinWarm = minWarm, MaxSlots = maxSlots, MaxInvocationsPerSlot = maxInvocations,
            IdleTimeout = TimeSpan.FromMilliseconds(idleMs), InvokeTimeout = TimeSpan.FromMilliseconds(invokeMs),
            QueueTimeout = TimeSpan.FromMilliseconds(queueMs), ReadyTimeout = TimeSpan.FromSeconds(5),
        };

    private static FunctionPool Start(FunctionSpec spec, FakeLauncher l)
    {
        var p = new FunctionPool(spec, l) { MaintenanceInterval = TimeSpan.FromMilliseconds(20) };
        p.Start();
        return p;
    }

    private static ReadOnlyMemory<byte> B(string s) => Encoding.UTF8.GetBytes(s);

    [Fact]
    public async Task Registration_starts_the_warm_minimum_and_an_invocation_uses_a_warm_slot()
    {
        var l = new FakeLauncher();
        var p = Start(Spec(minWarm: 2), l);
        Assert.True(Wait.Until(() => p.Counts().Idle == 2));
        var r = await p.InvokeAsync(B("hello"));
        Assert.Equal("HELLO", Encoding.UTF8.GetString(r.Body));
        Assert.Equal(0, r.Status);
        Assert.Equal(2, l.LaunchAttempts); // served by a warm slot, nothing started for it
        var r2 = await p.InvokeAsync(B("again"));
        Assert.Equal(r.SlotId, r2.SlotId); // the most recently used slot is reused
        await p.DrainAsync(TimeSpan.FromSeconds(1));
    }

    [Fact]
    public async Task The_pool_grows_under_concurrency_up_to_its_cap_and_no_further()
    {
        var l = new FakeLauncher();
        var p = Start(Spec(minWarm: 0, maxSlots: 3, queueMs: 5_000), l);
        int maxTotal = 0;
        using var sampling = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!sampling.IsCancellationRequested) { maxTotal = Math.Max(maxTotal, p.Counts().Total); await Task.Delay(1); }
        });
        var calls = Enumerable.Range(0, 9).Select(i => p.InvokeAsync(B(FakePayloads.SleepMs(100)))).ToArray();
        var results = await Task.WhenAll(calls);
        sampling.Cancel();
        await sampler;
        Assert.All(results, r => Assert.Equal("SLEEP:100", Encoding.UTF8.GetString(r.Body)));
        Assert.Equal(3, l.LaunchAttempts);
        Assert.True(maxTotal <= 3, $"the pool held {maxTotal} slots, over its cap of 3");
        Assert.Equal(3, results.Select(r => r.SlotId).Distinct().Count());
        Assert.Equal(0, l.Overlaps); // never two invocations on one slot at once
        await p.DrainAsync(TimeSpan.FromSeconds(1));
    }

    [Fact]
    public async Task A_full_pool_answers_pool_full_after_the_queue_timeout_not_later()
    {
        var l = new FakeLauncher();
        var p = Start(Spec(minWarm: 1, maxSlots: 1, invokeMs: 3_000, queueMs: 150), l);
        Assert.True(Wait.Until(() => p.Counts().Idle == 1));
        var busy = p.InvokeAsync(B(FakePayloads.SleepMs(1_000)));
        Assert.True(Wait.Until(() => p.Counts().Busy == 1));
        var sw = Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<PoolException>(() => p.InvokeAsync(B("x")));
        Assert.Equal(PoolErrorKind.PoolFull, e.Kind);
        Assert.InRange(sw.ElapsedMilliseconds, 100, 900);
        Assert.Contains("busy", e.Message);
        Assert.Equal("SLEEP:1000", Encoding.UTF8.GetString((await busy).Body)); // the running one is unaffected
        Assert.Equal(0, p.Counts().Waiting);
        await p.DrainAsync(TimeSpan.FromSeconds(1));
    }

    [Fact]
    public async Task A_waiting_invocation_gets_the_slot_freed_before_its_queue_timeout()
    {
        var l = new FakeLauncher();
        var p = Start(Spec(minWarm: 1, maxSlots: 1, queueMs: 2_000), l);
        Assert.True(Wait.Until(() => p.Counts().Idle == 1));
        var first = p.InvokeAsync(B(FakePayloads.SleepMs(150)));
        var second = p.InvokeAsync(B("next"));
        Assert.Equal("NEXT", Encoding.UTF8.GetString((await second).Body));
        await first;
        Assert.Equal(1, l.LaunchAttempts);
        await p.DrainAsync(TimeSpan.FromSeconds(1));
    }

    [Fact]
    public async Task Slots_are_recycled_after_their_invocation_count()
    {
        var l = new FakeLauncher();
        var p = Start(Spec(minWarm: 1, maxSlots: 2, maxInvocations: 3), l);
        var ids = new List<string>();
        for (int i = 0; i < 9; i++) ids.Add((await p.InvokeAsync(B("x"))).SlotId);
        Assert.Equal(3, ids.Distinct().Count());
        Assert.All(ids.GroupBy(i => i), g => Assert.Equal(3, g.Count()));
        Assert.True(Wait.Until(() => l.DisposeCalls >= 3), $"recycled slots stopped: {l.DisposeCalls}");
        Assert.True(Wait.Until(() => p.Counts().Total == 1)); // and the warm minimum is back
        await p.DrainAsync(TimeSpan.FromSeconds(1));
    }

    [Fact]
    public async Task Idle_slots_above_the_warm_minimum_are_stopped_after_the_idle_timeout()
    {
        var l = new FakeLauncher();
        var p = Start(Spec(minWarm: 1, maxSlots: 4, idleMs: 200, queueMs: 5_000), l);
        await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => p.InvokeAsync(B(FakePayloads.SleepMs(100)))));
        Assert.Equal(4, p.Counts().Total);
        Assert.True(Wait.Until(() => p.Counts().Total == 1, 3), $"pool did not shrink: {p.Counts()}");
        Thread.Sleep(300); // and never below the warm minimum
        Assert.Equal(1, p.Counts().Idle);
        Assert.Equal(l.Launched.Count - 1, l.DisposeCalls);
        await p.DrainAsync(TimeSpan.FromSeconds(1));
    }

    [Fact]
    public async Task An_idle_slot_that_dies_is_replaced()
    {
        var l = new FakeLauncher();
        var p = Start(Spec(minWarm: 2, maxSlots: 2), l);
        Assert.True(Wait.Until(() => p.Counts().Idle == 2));
        var victim = l.Launched.First();
        victim.Kill();
        Assert.True(Wait.Until(() => l.Launched.Count == 3 && p.Counts().Idle == 2), $"not replaced: {p.Counts()}");
        Assert.True(victim.Disposed);
        for (int i = 0; i < 5; i++) Assert.NotEqual(victim.Id, (await p.InvokeAsync(B("x"))).SlotId);
        await p.DrainAsync(TimeSpan.FromSeconds(1));
    }

    [Theory]
    [InlineData(FakePayloads.Die, PoolErrorKind.SlotDied, "died")]
    [InlineData(FakePayloads.Hang, PoolErrorKind.Timeout, "timed out")]
    [InlineData(FakePayloads.Garbage, PoolErrorKind.Garbage, "protocol")]
    public async Task A_failed_invocation_gets_a_clear_error_and_its_slot_is_killed_and_replaced(string payload, PoolErrorKind kind, string words)
    {
        var l = new FakeLauncher();
        var p = Start(Spec(minWarm: 1, maxSlots: 1, invokeMs: 300), l);
        Assert.True(Wait.Until(() => p.Counts().Idle == 1));
        var first = l.Launched.Single();
        var sw = Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<PoolException>(() => p.InvokeAsync(B(payload)));
        Assert.True(sw.ElapsedMilliseconds < 2_000, $"took {sw.ElapsedMilliseconds} ms");
        Assert.Equal(kind, e.Kind);
        Assert.Contains(words, e.Message);
        Assert.Contains(first.Id, e.Message);
        Assert.True(Wait.Until(() => first.Disposed));
        // The next invocation runs on a fresh slot.
        var r = await p.InvokeAsync(B("ok"));
        Assert.Equal("OK", Encoding.UTF8.GetString(r.Body));
        Assert.NotEqual(first.Id, r.SlotId);
        await p.DrainAsync(TimeSpan.FromSeconds(1));
    }

    [Fact]
    public async Task A_slot_that_cannot_start_fails_the_invocation_at_once_with_the_reason()
    {
        var l = new FakeLauncher { FailLaunches = true };
        var p = Start(Spec(minWarm: 0, maxSlots: 2, queueMs: 10_000), l);
        var sw = Stopwatch.StartNew();
        var e = await Assert.ThrowsAsync<PoolException>(() => p.InvokeAsync(B("x")));
        Assert.Equal(PoolErrorKind.LaunchFailed, e.Kind);
        Assert.Contains("flint-jailer exited", e.Message);
        Assert.True(sw.ElapsedMilliseconds < 2_000, "the invoker waited for its queue timeout instead of hearing the launch failed");
        l.FailLaunches = false;
        Assert.Equal("X", Encoding.UTF8.GetString((await p.InvokeAsync(B("x"))).Body));
        await p.DrainAsync(TimeSpan.FromSeconds(1));
    }

    [Fact]
    public async Task The_warm_minimum_backs_off_while_launches_fail()
    {
        var l = new FakeLauncher { FailLaunches = true };
        var p = Start(Spec(minWarm: 1), l);
        Thread.Sleep(600);
        // 20 ms maintenance ticks for 600 ms; with backoff (250, 500 ms, ...) only a handful of attempts.
        Assert.InRange(l.LaunchAttempts, 1, 5);
        await p.DrainAsync(TimeSpan.FromSeconds(1));
    }

    [Fact]
    public async Task Drain_fails_waiters_lets_running_invocations_finish_and_leaves_no_slot()
    {
        var l = new FakeLauncher();
        var p = Start(Spec(minWarm: 2, maxSlots: 2, queueMs: 5_000), l);
        Assert.True(Wait.Until(() => p.Counts().Idle == 2));
        var running = p.InvokeAsync(B(FakePayloads.SleepMs(200)));
        var running2 = p.InvokeAsync(B(FakePayloads.SleepMs(200)));
        Assert.True(Wait.Until(() => p.Counts().Busy == 2));
        var waiting = p.InvokeAsync(B("late"));
        Assert.True(Wait.Until(() => p.Counts().Waiting == 1));
        await p.DrainAsync(TimeSpan.FromSeconds(2));
        Assert.Equal(PoolErrorKind.Draining, (await Assert.ThrowsAsync<PoolException>(() => waiting)).Kind);
        Assert.Equal("SLEEP:200", Encoding.UTF8.GetString((await running).Body));
        await running2;
        Assert.Equal(PoolErrorKind.Draining, (await Assert.ThrowsAsync<PoolException>(() => p.InvokeAsync(B("x")))).Kind);
        Assert.All(l.Launched, s => Assert.True(s.Disposed, $"{s.Id} left running"));
        Assert.Equal(new PoolCounts(0, 0, 0, 0), p.Counts());
    }

    [Fact]
    public async Task Drain_kills_an_invocation_that_outlives_the_grace()
    {
        var l = new FakeLauncher();
        var p = Start(Spec(minWarm: 1, maxSlots: 1, invokeMs: 10_000), l);
        Assert.True(Wait.Until(() => p.Counts().Idle == 1));
        var hung = p.InvokeAsync(B(FakePayloads.Hang));
        Assert.True(Wait.Until(() => p.Counts().Busy == 1));
        var sw = Stopwatch.StartNew();
        await p.DrainAsync(TimeSpan.FromMilliseconds(200));
        Assert.True(sw.ElapsedMilliseconds < 3_000);
        var e = await Assert.ThrowsAsync<PoolException>(() => hung);
        Assert.Equal(PoolErrorKind.SlotDied, e.Kind);
        Assert.All(l.Launched, s => Assert.True(s.Disposed));
    }

    [Fact]
    public async Task Drain_during_a_launch_stops_the_slot_it_was_starting()
    {
        var l = new FakeLauncher { LaunchDelay = TimeSpan.FromMilliseconds(300) };
        var p = Start(Spec(minWarm: 2, maxSlots: 2), l);
        Assert.True(Wait.Until(() => p.Counts().Starting == 2));
        await p.DrainAsync(TimeSpan.FromSeconds(1));
        // The fake's launch honours cancellation: nothing launched, or whatever was launched is disposed.
        Assert.All(l.Launched, s => Assert.True(s.Disposed));
        Assert.Equal(new PoolCounts(0, 0, 0, 0), p.Counts());
    }

    [Fact]
    public async Task A_thousand_invocations_from_eight_clients_are_all_answered_and_nothing_is_left_after_drain()
    {
        var l = new FakeLauncher();
        var p = Start(Spec(minWarm: 2, maxSlots: 4, maxInvocations: 50, queueMs: 10_000), l);
        int wrong = 0;
        await Task.WhenAll(Enumerable.Range(0, 8).Select(c => Task.Run(async () =>
        {
            for (int i = 0; i < 125; i++)
            {
                string s = $"client{c}-call{i}";
                var r = await p.InvokeAsync(B(s));
                if (Encoding.UTF8.GetString(r.Body) != s.ToUpperInvariant()) Interlocked.Increment(ref wrong);
            }
        })));
        Assert.Equal(0, wrong);
        Assert.Equal(0, l.Overlaps);
        Assert.Equal(1000, l.Launched.Sum(s => s.Invocations));
        Assert.True(l.Launched.Count >= 20, $"recycling every 50 invocations needs at least 20 slots, got {l.Launched.Count}");
        await p.DrainAsync(TimeSpan.FromSeconds(1));
        Assert.All(l.Launched, s => Assert.True(s.Disposed));
        Assert.Equal(l.Launched.Count, l.DisposeCalls);
    }

    [Fact]
    public async Task A_cancelled_invocation_does_not_leak_its_slot_or_its_place_in_the_queue()
    {
        var l = new FakeLauncher();
        var p = Start(Spec(minWarm: 1, maxSlots: 1, queueMs: 5_000), l);
        Assert.True(Wait.Until(() => p.Counts().Idle == 1));
        var busy = p.InvokeAsync(B(FakePayloads.SleepMs(300)));
        using var cts = new CancellationTokenSource(50);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => p.InvokeAsync(B("x"), cts.Token));
        Assert.Equal(0, p.Counts().Waiting);
        await busy;
        Assert.Equal("Y", Encoding.UTF8.GetString((await p.InvokeAsync(B("y"))).Body));
        await p.DrainAsync(TimeSpan.FromSeconds(1));
    }

    [Fact]
    public async Task A_payload_over_the_limit_is_refused_before_taking_a_slot()
    {
        var l = new FakeLauncher();
        var p = Start(Spec() with { MaxPayloadBytes = 4 }, l);
        var e = await Assert.ThrowsAsync<PoolException>(() => p.InvokeAsync(B("12345")));
        Assert.Equal(PoolErrorKind.BadRequest, e.Kind);
        await p.DrainAsync(TimeSpan.FromSeconds(1));
    }
}
