using Flint.Devices.Legacy;
using Flint.Devices.RateLimiting;

namespace Flint.Devices.Tests.Legacy;

/// <summary>
/// PUT /serial's output rules, as Firecracker's SerialOut (devices/legacy/serial.rs): a token bucket drops what
/// exceeds it (uart.rate_limiter_dropped_bytes), and an output that cannot take a byte at once loses it
/// (uart.error_count) without the vCPU waiting.
/// </summary>
public sealed class SerialOutputTests
{
    private static void Out(Serial s, byte v) => s.Write(0, [v]);

    /// <summary>An output that takes <see cref="Room"/> bytes, then reports it is full (a FIFO nobody drains).</summary>
    private sealed class FullAfter(int room) : MemoryStream, INonBlockingOutput
    {
        public int Room = room;
        public bool TryWrite(ReadOnlySpan<byte> bytes)
        {
            if (Room < bytes.Length) return false;
            Room -= bytes.Length;
            Write(bytes);
            return true;
        }
    }

    [Fact]
    public void Rate_limiter_drops_bytes_over_budget_and_counts_them()
    {
        var clock = new FakeClock();
        var ms = new MemoryStream();
        // 10 bytes per 1000 ms, no burst.
        var s = new Serial(ms, new CountingInterrupt(), new TokenBucket(10, 0, 1000, clock));
        for (int i = 0; i < 25; i++) Out(s, (byte)('a' + i));
        Assert.Equal("abcdefghij"u8.ToArray(), ms.ToArray());
        Assert.Equal(15, s.Metrics.RateLimiterDroppedBytes);
        // Firecracker's SerialOut reports a dropped byte as written, so vm-superio counts it in write_count.
        Assert.Equal(25, s.Metrics.WriteCount);

        clock.AdvanceMs(500); // half the bucket back
        for (int i = 0; i < 6; i++) Out(s, (byte)'z');
        Assert.Equal("abcdefghijzzzzz"u8.ToArray(), ms.ToArray());
        Assert.Equal(16, s.Metrics.RateLimiterDroppedBytes);
    }

    [Fact]
    public void Disabled_rate_limiter_lets_everything_through()
    {
        var ms = new MemoryStream();
        var s = new Serial(ms, new CountingInterrupt(), new TokenBucket(0, 0, 0, new FakeClock()));
        for (int i = 0; i < 100; i++) Out(s, (byte)'x');
        Assert.Equal(100, ms.Length);
        Assert.Equal(0, s.Metrics.RateLimiterDroppedBytes);
    }

    [Fact]
    public void Full_non_blocking_output_drops_and_counts_errors_without_waiting()
    {
        var o = new FullAfter(3);
        var s = new Serial(o, new CountingInterrupt());
        foreach (var c in "hello"u8.ToArray()) Out(s, c);
        Assert.Equal("hel"u8.ToArray(), o.ToArray());
        Assert.Equal(3, s.Metrics.WriteCount);
        Assert.Equal(2, s.Metrics.ErrorCount);
        o.Room = 10; // the reader caught up: output resumes
        Out(s, (byte)'!');
        Assert.Equal("hel!"u8.ToArray(), o.ToArray());
    }
}
