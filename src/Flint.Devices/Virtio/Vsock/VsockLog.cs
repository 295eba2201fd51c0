namespace Flint.Devices.Virtio.Vsock;

/// <summary>
/// Where vsock reports its failures until Flint.Devices has a logger: one hook the VMM binds at start-up (null:
/// not logged; every failure is still counted in <see cref="VsockMetrics"/>). Messages are constant strings, so a
/// failing path allocates nothing. Some failures are the guest's to provoke (unusable rx buffers, by the queue-full),
/// so at most <see cref="BurstLimit"/> lines go out per second; the rest are only counted (<see cref="Suppressed"/>).
/// </summary>
public static class VsockLog
{
    public const int BurstLimit = 10;

    private static readonly Lock s_lock = new();
    private static long s_windowStart;
    private static int s_inWindow;
    private static long s_suppressed;

    /// <summary>Receives one line per failure. Called under the device lock on the event-loop thread: keep it cheap, never throw.</summary>
    public static Action<string>? Hook;

    /// <summary>Failure lines dropped by the rate limit since start.</summary>
    public static long Suppressed => Interlocked.Read(ref s_suppressed);

    internal static void Failure(string message)
    {
        var hook = Volatile.Read(ref Hook);
        if (hook == null) return;
        lock (s_lock)
        {
            long now = Environment.TickCount64;
            if (now - s_windowStart >= 1000)
            {
                s_windowStart = now;
                s_inWindow = 0;
            }
            if (s_inWindow >= BurstLimit)
            {
                s_suppressed++;
                return;
            }
            s_inWindow++;
        }
        try { hook(message); }
        catch (Exception) { } // a broken logger must not take the device down
    }
}
