using Flint.Devices.RateLimiting;

namespace Flint.Devices.Tests.Virtio;

/// <summary>
/// A fake clock that plays a second vCPU: the first time a rate limiter reads it after <see cref="Arm"/>, it runs
/// the given action (rewriting guest memory). A device reads the clock while it charges a request, so the action
/// lands exactly between "charged" and "executed": the window a device that reads a request twice leaves open.
/// </summary>
public sealed class RacingClock : IClock
{
    private readonly FakeClock _time = new();
    private Action? _race;

    public int Fired { get; private set; }

    public void Arm(Action race) => _race = race;

    public ulong NowNanoseconds
    {
        get
        {
            var race = Interlocked.Exchange(ref _race, null);
            if (race != null)
            {
                race();
                Fired++;
            }
            return _time.NowNanoseconds;
        }
    }
}
