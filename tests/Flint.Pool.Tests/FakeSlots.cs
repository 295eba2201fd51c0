using System.Collections.Concurrent;
using System.Text;
using Flint.Pool;

namespace Flint.Pool.Tests;

/// <summary>How a fake slot answers an invocation whose payload is this text.</summary>
internal static class FakePayloads
{
    public const string Hang = "hang", Garbage = "garbage", Die = "die";
    public static string SleepMs(int ms) => "sleep:" + ms;
}

/// <summary>
/// A slot with no VM: it uppercases payloads (the test guest's "upper" handler), and misbehaves on request:
/// "hang" never answers (until the timeout, as AgentClient does), "garbage" breaks the protocol, "die" exits
/// mid-invocation, "sleep:N" answers after N ms. It records what the pool did to it.
/// </summary>
internal sealed class FakeSlot(string id, FakeLauncher owner) : ISlot
{
    private readonly TaskCompletionSource _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _inFlight;

    public string Id { get; } = id;
    public int Pid => 0;
    public Task Exited => _exited.Task;
    public bool Disposed { get; private set; }
    public int Invocations;

    /// <summary>The VM dies on its own (kill -9 of the process).</summary>
    public void Kill() => _exited.TrySetResult();

    public async Task<InvokeResult> InvokeAsync(string invocationId, ReadOnlyMemory<byte> payload, TimeSpan timeout, CancellationToken ct)
    {
        if (Interlocked.Increment(ref _inFlight) != 1) owner.Overlaps++;
        try
        {
            if (Disposed || Exited.IsCompleted) throw new AgentException(AgentFailure.Closed, "closed");
            Interlocked.Increment(ref Invocations);
            string text = Encoding.UTF8.GetString(payload.Span);
            switch (text)
            {
                case FakePayloads.Hang:
                    await Task.WhenAny(Task.Delay(timeout, ct), Exited);
                    ct.ThrowIfCancellationRequested();
                    if (Exited.IsCompleted) throw new AgentException(AgentFailure.Closed, "closed");
                    throw new AgentException(AgentFailure.Timeout, "no answer");
                case FakePayloads.Garbage:
                    throw new AgentException(AgentFailure.Garbage, "'HELLO'");
                case FakePayloads.Die:
                    Kill();
                    throw new AgentException(AgentFailure.Closed, "closed");
            }
            if (text.StartsWith("sleep:", StringComparison.Ordinal))
            {
                var sleep = Task.Delay(int.Parse(text[6..]), ct);
                if (await Task.WhenAny(sleep, Exited) != sleep) throw new AgentException(AgentFailure.Closed, "closed");
                await sleep;
            }
            return new InvokeResult(0, Encoding.UTF8.GetBytes(text.ToUpperInvariant()));
        }
        finally { Interlocked.Decrement(ref _inFlight); }
    }

    public Task<string?> ReadVmmMetricsAsync(CancellationToken ct) => Task.FromResult<string?>($"{{\"slot\":\"{Id}\"}}");

    public ValueTask DisposeAsync()
    {
        lock (owner) owner.DisposeCalls++;
        Disposed = true;
        Kill();
        return ValueTask.CompletedTask;
    }
}

/// <summary>Launches <see cref="FakeSlot"/>s after <see cref="LaunchDelay"/>; fails while <see cref="FailLaunches"/> is set.</summary>
internal sealed class FakeLauncher : ISlotLauncher
{
    public readonly ConcurrentQueue<FakeSlot> Launched = new();
    public TimeSpan LaunchDelay = TimeSpan.FromMilliseconds(5);
    public volatile bool FailLaunches;
    public int LaunchAttempts, DisposeCalls, Overlaps, Prepared, Forgotten;
    private int _maxAlive;

    public int MaxAlive => Volatile.Read(ref _maxAlive);
    public int Alive => Launched.Count(s => !s.Disposed);

    public Task PrepareFunctionAsync(FunctionSpec spec, CancellationToken ct) { Interlocked.Increment(ref Prepared); return Task.CompletedTask; }
    public Task ForgetFunctionAsync(FunctionSpec spec) { Interlocked.Increment(ref Forgotten); return Task.CompletedTask; }

    public async Task<ISlot> LaunchAsync(FunctionSpec spec, string slotId, CancellationToken ct)
    {
        Interlocked.Increment(ref LaunchAttempts);
        await Task.Delay(LaunchDelay, ct);
        if (FailLaunches) throw new PoolException(PoolErrorKind.LaunchFailed, $"slot {slotId}: flint-jailer exited with code 1 (fake)");
        var s = new FakeSlot(slotId, this);
        Launched.Enqueue(s);
        int alive = Alive;
        int m;
        while (alive > (m = Volatile.Read(ref _maxAlive)) && Interlocked.CompareExchange(ref _maxAlive, alive, m) != m) { }
        return s;
    }
}

internal static class Wait
{
    /// <summary>Polls <paramref name="cond"/> for up to <paramref name="seconds"/>; false if it never held.</summary>
    public static bool Until(Func<bool> cond, double seconds = 5)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        while (sw.Elapsed.TotalSeconds < seconds)
        {
            if (cond()) return true;
            Thread.Sleep(5);
        }
        return cond();
    }
}
