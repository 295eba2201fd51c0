using Flint.Sys;

namespace Flint.Devices.Virtio.Vsock;

/// <summary>
/// Connections waiting on the guest (an unanswered REQUEST, or a SHUTDOWN after host EOF) with a deadline, and
/// the timerfd armed on the earliest one. A guest that never answers costs a connection slot for
/// <see cref="Timeout"/>, not forever.
/// </summary>
internal sealed class VsockKillQueue : IDisposable
{
    private readonly List<VsockConnection> _conns = new();
    private readonly TimerFd _timer = new();

    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>The timerfd to poll; it fires at the earliest deadline.</summary>
    public int Fd => _timer.Fd;

    public int Count => _conns.Count;

    /// <summary>(Re)starts <paramref name="conn"/>'s deadline.</summary>
    public void Schedule(VsockConnection conn)
    {
        bool queued = conn.KillDeadline != 0;
        conn.KillDeadline = Math.Max(1, Environment.TickCount64 + (long)Timeout.TotalMilliseconds);
        if (!queued) _conns.Add(conn);
        Arm();
    }

    /// <summary>
    /// On the timer: takes out connections that stopped waiting (answered or closed) and hands those whose deadline
    /// passed to <paramref name="expired"/>; re-arms for the rest.
    /// </summary>
    public void OnTimer(Action<VsockConnection> expired)
    {
        _timer.Read();
        long now = Environment.TickCount64;
        for (int i = _conns.Count - 1; i >= 0; i--)
        {
            var c = _conns[i];
            bool waiting = c.AwaitsGuest;
            if (waiting && c.KillDeadline > now) continue;
            _conns.RemoveAt(i);
            c.KillDeadline = 0;
            if (waiting) expired(c);
        }
        if (_conns.Count > 0) Arm();
    }

    public void Clear()
    {
        foreach (var c in _conns) c.KillDeadline = 0;
        _conns.Clear();
        try { _timer.Arm(TimeSpan.Zero); } catch (SysException) { }
    }

    private void Arm()
    {
        long earliest = long.MaxValue;
        foreach (var c in _conns) earliest = Math.Min(earliest, c.KillDeadline);
        if (earliest == long.MaxValue) { _timer.Arm(TimeSpan.Zero); return; }
        long ms = Math.Max(1, earliest - Environment.TickCount64);
        _timer.Arm(TimeSpan.FromMilliseconds(ms));
    }

    public void Dispose() => _timer.Dispose();
}
