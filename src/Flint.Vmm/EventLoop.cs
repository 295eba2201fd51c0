using Flint.Devices;
using Flint.Sys;
using Flint.Vmm.Logging;

namespace Flint.Vmm;

/// <summary>
/// The VMM thread's epoll loop: queue notifications (ioeventfds), stdin for the serial console, timers, device
/// fds and the exit event. Handlers run on this one thread, so device back-ends need no locks against each other.
/// </summary>
public sealed class EventLoop : IEventRegistrar, IDisposable
{
    private readonly Epoll _epoll = new();
    private readonly List<Action<uint>?> _handlers = [];
    private readonly Dictionary<int, int> _tokenByFd = [];
    private readonly Stack<int> _freeTokens = new();
    // Tokens freed while a batch is dispatched are recycled only after it, so a stale event of that batch can
    // never reach the handler of an fd added in the meantime.
    private readonly List<int> _freedThisBatch = [];
    private readonly EpollEvent[] _events = new EpollEvent[32];

    /// <summary>Number of fds being polled.</summary>
    public int Count => _tokenByFd.Count;

    /// <summary>Adds an fd; <paramref name="handler"/> gets the epoll event mask each time it is ready.</summary>
    public void Add(int fd, Action<uint> handler, uint events = Libc.EPOLLIN)
    {
        if (_tokenByFd.ContainsKey(fd)) throw new InvalidOperationException($"fd {fd} is already in the event loop");
        int token;
        if (_freeTokens.Count > 0) { token = _freeTokens.Pop(); _handlers[token] = handler; }
        else { token = _handlers.Count; _handlers.Add(handler); }
        try { _epoll.Add(fd, (ulong)token, events); }
        catch
        {
            _handlers[token] = null;
            _freeTokens.Push(token);
            throw;
        }
        _tokenByFd[fd] = token;
    }

    public void Add(EventSource source) => Add(source.Fd, source.OnReady, source.Events);

    public void Remove(int fd)
    {
        if (!_tokenByFd.Remove(fd, out int token)) return;
        _handlers[token] = null;
        _freedThisBatch.Add(token);
        try { _epoll.Remove(fd); } catch (SysException) { /* already closed: epoll dropped it itself */ }
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
        foreach (var t in _freedThisBatch) _freeTokens.Push(t);
        _freedThisBatch.Clear();
    }

    public void Dispose() => _epoll.Dispose();
}
