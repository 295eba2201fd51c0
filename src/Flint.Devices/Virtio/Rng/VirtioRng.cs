using Flint.Devices.RateLimiting;
using Flint.Memory;

namespace Flint.Devices.Virtio.Rng;

/// <summary>
/// virtio-rng / entropy device (spec 5.4): one request queue; the driver posts device-writable buffers and the
/// device fills them with bytes from the host's getrandom. A chain carrying any device-readable buffer (or a broken
/// chain) completes with length 0. Each request costs 1 op plus its byte count on the optional rate limiter; when
/// throttled the request is left on the queue (the pop is undone) and the queue resumes when the limiter's timer
/// fires. Requests are capped at <see cref="MaxBytesPerRequest"/> (the spec lets the device fill less than offered).
/// The kick, throttle and limiter-timer handling (and its device lock) is <see cref="RateLimitedQueueDevice"/>'s.
/// </summary>
// SAFETY: getrandom writes into write-only descriptors of a validated chain, at most each piece's length.
public sealed unsafe partial class VirtioRng : RateLimitedQueueDevice
{
    public const ushort QueueSize = 256;

    /// <summary>Most bytes one request receives: bounds the time one guest request can hold the event loop.</summary>
    public const uint MaxBytesPerRequest = 64 * 1024;

    private static readonly ushort[] s_queueSizes = [QueueSize];

    private readonly ChainBuffers _buffers = new(QueueSize);

    /// <param name="limiter">Optional; the device owns it from here on (sets its <see cref="RateLimiter.OnUnblocked"/>, disposes it).</param>
    public VirtioRng(RateLimiter? limiter = null) : this(limiter, new EntropyMetrics()) { }

    private VirtioRng(RateLimiter? limiter, EntropyMetrics metrics) : base(limiter, metrics) => Metrics = metrics;

    public EntropyMetrics Metrics { get; }

    public override uint DeviceType => VirtioDeviceType.Rng;

    public override ulong AvailableFeatures => VirtioFeatures.Version1;

    public override ReadOnlySpan<ushort> QueueMaxSizes => s_queueSizes;

    /// <summary>No config space: reads as zeroes.</summary>
    public override void ReadConfig(ulong offset, Span<byte> data) => data.Clear();

    public override void WriteConfig(ulong offset, ReadOnlySpan<byte> data) { }

    protected override void OnActivateFailed() => Interlocked.Increment(ref Metrics.ActivateFails);

    protected override void ServeQueue(VirtQueue q, GuestMemory mem, VirtioInterrupt irq)
    {
        bool used = false;
        while (q.TryPop(out var chain))
        {
            Interlocked.Increment(ref Metrics.EntropyEventCount);
            uint len;
            try
            {
                // One read of the chain; the request is measured, charged and filled from this copy.
                if (!_buffers.Load(ref chain, mem) || _buffers.ReadableCount != 0)
                {
                    Interlocked.Increment(ref Metrics.EntropyEventFails);
                    Log.Error("malformed request chain (broken, or with device-readable buffers)");
                    len = 0;
                }
                else
                {
                    uint want = (uint)Math.Min(_buffers.WritableBytes, MaxBytesPerRequest);
                    if (want > 0 && RateLimiter is { } rl && !rl.ConsumeRequest(want))
                    {
                        // Leave the request where it was; the limiter's timer resumes the queue.
                        q.UndoPop();
                        Interlocked.Increment(ref Metrics.EntropyRateLimiterThrottled);
                        break;
                    }
                    len = Fill(want);
                }
            }
            catch (Exception e)
            {
                // A defect here must cost one request, not the VMM.
                Interlocked.Increment(ref Metrics.EntropyEventFails);
                Log.Error("request failed", e.GetType().Name);
                len = 0;
            }
            q.AddUsed(chain.HeadIndex, len);
            used = true;
        }
        if (used && q.NeedsNotification()) irq.SignalUsedQueue(0);
    }

    private uint Fill(uint want)
    {
        var writer = _buffers.Writer();
        while (writer.NextPiece(want - writer.Written, out byte* p, out uint len))
        {
            if (!Flint.Sys.Libc.FillRandom(p, len))
            {
                Log.Error("getrandom failed, errno", Flint.Sys.Libc.Errno);
                Interlocked.Increment(ref Metrics.HostRngFails);
                Interlocked.Increment(ref Metrics.EntropyEventFails);
                return 0;
            }
        }
        Interlocked.Add(ref Metrics.EntropyBytes, (long)writer.Written);
        return (uint)writer.Written;
    }
}
