namespace Flint.Devices.Virtio.Vsock;

/// <summary>
/// Where vsock reports its failures until Flint.Devices has a logger: one hook the VMM binds at start-up (null:
/// not logged, still counted in <see cref="VsockMetrics"/>). Messages are constant strings, so a failing path
/// allocates nothing; a guest that makes the same thing fail over and over is the listener's to rate-limit.
/// </summary>
public static class VsockLog
{
    /// <summary>Receives one line per failure. Called under the device lock on the event-loop thread: keep it cheap, never throw.</summary>
    public static Action<string>? Hook;

    internal static void Failure(string message)
    {
        var hook = Volatile.Read(ref Hook);
        if (hook == null) return;
        try { hook(message); }
        catch (Exception) { } // a broken logger must not take the device down
    }
}
