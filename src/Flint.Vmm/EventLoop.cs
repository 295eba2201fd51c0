using Flint.Sys;
using Flint.Vmm.Logging;

namespace Flint.Vmm;

/// <summary>
/// The VMM thread's epoll loop: queue notifications (ioeventfds), stdin for the serial console, timers and the
/// exit event. Handlers run on this one thread, so device back-ends need no locks against each other.
/// </summary>
public sealed class EventLoop : IDisposable
{
    private readonly Epoll _epoll = new();
    private readonly List<Action<uint>?> _handlers = [];
    private readonly Dictionary<int, int> _tokenByFd = [];
    private readonly EpollEvent[] _events = new EpollEvent[32];

    /// <summary>Adds an fd; <paramref name="handler"/> gets the epoll event mask each time it is ready.</summary>
    public void Add(int fd, Action<uint> handler, uint events = Libc.EPOLLIN)
    {
        int token = _handlers.Count;
        _handlers.Add(handler);
        _tokenByFd[fd] = token;
        _epoll.Add(fd, (ulong)token, events);
    }

    public void Remove(int fd)
    {
        if (!_tokenByFd.Remove(fd, out int token)) return;
        _handlers[token] = null;
        _epoll.Remove(fd);
    }

    /// <summary>Dispatches ready events until <paramref name="done"/> returns true (checked after each batch).</summary>
    public void Run(Func<bool> done, int timeoutMs = -1)
    {
        while (!done()) RunOnce(timeoutMs);
    }

    public void RunOnce(int timeoutMs)
    {
        int n = _epoll.Wait(_events, timeoutMs);
        for (int i = 0; i < n; i++)
        {
            var h = _handlers[(int)_events[i].Data];
            if (h == null) continue;
            try { h(_events[i].Events); }
            catch (Exception e) { Logger.Error($"Event handler failed: {e.Message}"); }
        }
    }

    public void Dispose() => _epoll.Dispose();
}
