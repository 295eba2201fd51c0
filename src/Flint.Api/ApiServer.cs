using System.Net.Sockets;
using System.Text;
using Flint.Sys;
using Flint.Vmm.Logging;
using Flint.Vmm.Metrics;
using Flint.Vmm.Rpc;

namespace Flint.Api;

/// <summary>
/// Firecracker's API server: HTTP/1.1 over a Unix domain socket, served by one thread ("fc_api") with an epoll
/// loop. Keep-alive and pipelining, Content-Length bodies only. Each parsed request goes through
/// <see cref="ApiRequestParser"/> and then to the <see cref="IApiHandler"/>, one at a time, on this thread.
/// <para>
/// Careless or hostile clients cannot lock the API out. At most <see cref="MaxConnections"/> connections are open;
/// when a new client comes and all are taken, the connection idle longest (no request half-read, no answer unsent)
/// is closed to make room, and when none is idle the new client gets micro-http's "503 Too many open connections"
/// at once, as Firecracker answers. A connection that has begun a request must complete it within
/// <see cref="ClientTimeout"/> of its first byte, and one whose answers wait unsent must take them within that time
/// of the last one, or it is closed: that ends slow clients (a request trickled byte by byte, answers never read).
/// An idle keep-alive connection is left open however long it idles, as Firecracker leaves it: clients such as
/// Firecracker's SDKs keep one connection for a microVM's lifetime and do not replay a PUT on a connection the
/// server closed. Idle connections cost a slot at most, and a new client takes the slot of the idlest one.
/// </para>
/// </summary>
public sealed class ApiServer : IDisposable
{
    public const int MaxConnections = 10;
    public const string ThreadName = "fc_api";

    private const ulong ListenerToken = ulong.MaxValue;
    private const ulong StopToken = ulong.MaxValue - 1;
    private const ulong ExtraToken = ulong.MaxValue - 2;
    private const int InitialBuffer = 4096;

    /// <summary>How long a client has to send each complete request (see <see cref="ClientTimeout"/>).</summary>
    public static readonly TimeSpan DefaultClientTimeout = TimeSpan.FromSeconds(30);

    private readonly string _socketPath;
    private readonly int _maxPayload;
    private readonly int _maxHead = HttpRequestParser.DefaultMaxHeadBytes;
    private readonly IApiHandler _handler;
    private readonly ApiConnection?[] _conns = new ApiConnection?[MaxConnections];
    private readonly PathCache _paths = new();
    private readonly EpollEvent[] _events = new EpollEvent[MaxConnections + 2];
    private Socket? _listener;
    private Epoll? _epoll;
    private EventFd? _stop;
    private Thread? _thread;
    private volatile bool _stopping;
    private int _count;
    private long _timeoutMs = (long)DefaultClientTimeout.TotalMilliseconds;
    private bool _bound;

    public ApiServer(string socketPath, int maxPayloadBytes, IApiHandler handler)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxPayloadBytes);
        _socketPath = socketPath;
        _maxPayload = maxPayloadBytes;
        _handler = handler;
    }

    /// <summary>Runs on the API thread before it serves anything (seccomp installs the api filter here).</summary>
    public Action? BeforeServe { get; set; }

    /// <summary>One more fd the API thread watches next to its sockets, and what it runs when the fd turns readable
    /// (flint hands it the fatal-signal eventfd, so a thread that is not the faulting one flushes the metrics). Set before
    /// <see cref="Start"/>.</summary>
    public (int Fd, Action OnReadable)? ExtraWatch { get; set; }

    /// <summary>Counts each answered request under Firecracker's get/put/patch_api_requests counters.</summary>
    public ApiRequestMetrics? RequestMetrics { get; set; }

    /// <summary>
    /// The time a connection has to deliver its next complete request, counted from its accept or its last answer and
    /// not extended by partial input; past it the connection is closed. Set before <see cref="Start"/> (tests shorten it).
    /// </summary>
    public TimeSpan ClientTimeout
    {
        get => TimeSpan.FromMilliseconds(_timeoutMs);
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, TimeSpan.FromMilliseconds(1));
            if (_thread != null) throw new InvalidOperationException("Set the client timeout before starting the server.");
            _timeoutMs = (long)value.TotalMilliseconds;
        }
    }

    /// <summary>Clients turned away with 503 because every connection was busy (for tests).</summary>
    public long RefusedConnections => Interlocked.Read(ref _refused);
    private long _refused;
    /// <summary>Connections closed for missing <see cref="ClientTimeout"/> or to make room for a new client (for tests).</summary>
    public long DroppedConnections => Interlocked.Read(ref _dropped);
    private long _dropped;

    public string SocketPath => _socketPath;
    public int MaxPayloadBytes => _maxPayload;
    /// <summary>Connections open right now (for tests and metrics).</summary>
    public int ConnectionCount => Volatile.Read(ref _count);
    /// <summary>Requests answered so far.</summary>
    public long RequestsServed => Interlocked.Read(ref _served);
    private long _served;

    /// <summary>
    /// Binds the socket and starts the API thread. Like Firecracker, refuses a path where anything exists already (a
    /// live socket, a stale one, a regular file: none is deleted). Throws <see cref="ApiSocketException"/>, with the
    /// operator's message, on any failure, and leaves nothing behind.
    /// </summary>
    public void Start()
    {
        if (_thread != null) throw new InvalidOperationException("The API server is already started.");
        ApiSocketPath.Check(_socketPath);
        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        // Bind and listen under a temporary name, then move into place: a client that waits for the socket file to
        // appear (as Firecracker tooling does) must never find one that refuses connections. The move links without
        // replacing, so a file that appeared at the path meanwhile is refused, not overwritten.
        string temp = $"{_socketPath}.{Environment.ProcessId}.tmp";
        bool viaTemp = Encoding.UTF8.GetByteCount(temp) <= ApiSocketPath.MaxBytes && !ApiSocketPath.Exists(temp);
        bool tempBound = false;
        try
        {
            listener.Bind(new UnixDomainSocketEndPoint(viaTemp ? temp : _socketPath));
            tempBound = viaTemp;
            _bound = !viaTemp;
            listener.Listen(64);
            if (viaTemp)
            {
                try { File.Move(temp, _socketPath); }
                catch (IOException) when (ApiSocketPath.Exists(_socketPath)) { throw ApiSocketException.InUse(_socketPath); }
                tempBound = false;
                _bound = true;
            }
            listener.Blocking = false;
            _epoll = new Epoll();
            _stop = new EventFd(nonBlocking: true);
            _epoll.Add((int)listener.Handle, ListenerToken);
            _epoll.Add(_stop.Fd, StopToken);
            if (ExtraWatch is { } w) _epoll.Add(w.Fd, ExtraToken);
        }
        catch (Exception e) when (e is SocketException or IOException or UnauthorizedAccessException or ArgumentException or SysException)
        {
            listener.Dispose();
            if (tempBound) TryDelete(temp);
            Cleanup();
            throw e switch
            {
                ApiSocketException a => a,
                SocketException { SocketErrorCode: SocketError.AddressAlreadyInUse } => ApiSocketException.InUse(_socketPath),
                SocketException { SocketErrorCode: SocketError.AccessDenied } => ApiSocketException.BindFailed("Permission denied (os error 13)"),
                UnauthorizedAccessException => ApiSocketException.BindFailed("Permission denied (os error 13)"),
                _ => ApiSocketException.BindFailed(e.Message),
            };
        }
        _listener = listener;
        _thread = new Thread(Run) { Name = ThreadName, IsBackground = true };
        _thread.Start();
    }

    private static void TryDelete(string path)
    {
        try { File.Delete(path); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }

    private void Run()
    {
        BeforeServe?.Invoke();
        Logger.Info("API server started.");
        try
        {
            while (!_stopping)
            {
                int n = _epoll!.Wait(_events, MsToNextDeadline());
                for (int i = 0; i < n && !_stopping; i++)
                {
                    ulong token = _events[i].Data;
                    uint ev = _events[i].Events;
                    if (token == StopToken) { _stopping = true; break; }
                    if (token == ListenerToken) { AcceptOne(); continue; }
                    if (token == ExtraToken) { ExtraWatch?.OnReadable(); continue; }
                    var c = _conns[(int)token];
                    if (c == null) continue;
                    ServiceOrClose(c, ev);
                }
                if (!_stopping) DropExpired();
            }
        }
        catch (Exception e)
        {
            Logger.Error($"API server thread failed: {e}");
        }
    }

    private void ServiceOrClose(ApiConnection c, uint events)
    {
        try { Service(c, events); }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or IOException or SysException)
        {
            Close(c);
        }
    }

    /// <summary>epoll_wait's timeout: until the earliest connection deadline, or forever with no connection open.</summary>
    private int MsToNextDeadline()
    {
        if (_count == 0) return -1;
        long earliest = long.MaxValue;
        foreach (var c in _conns) if (c != null && !c.IsIdle && c.DeadlineMs < earliest) earliest = c.DeadlineMs;
        return earliest == long.MaxValue ? -1 : (int)Math.Clamp(earliest - Environment.TickCount64, 0, int.MaxValue);
    }

    private void DropExpired()
    {
        if (_count == 0) return;
        long now = Environment.TickCount64;
        foreach (var c in _conns)
        {
            if (c == null || c.IsIdle || c.DeadlineMs > now) continue;
            // Debug, not Warn: a client can cause one of these per timeout per slot, and the log must not be its tool.
            if (Logger.IsEnabled(LogLevel.Debug)) Logger.Debug("API server: closing a connection that sent no complete request, or took no answer, in time.");
            Interlocked.Increment(ref _dropped);
            Close(c);
        }
    }

    /// <summary>
    /// Accepts one connection per listener wake-up. The listener is level-triggered, so the next epoll_wait reports it
    /// again while more clients wait, after the open connections had their turn: a connect flood cannot keep the loop
    /// from serving them. One, not "until it would block": .NET's Accept reports "would block" by throwing, and that
    /// throw ran the exception machinery on every new connection (1.9 MiB of the binary's pages made resident by the
    /// first one, and its time on every one).
    /// </summary>
    private void AcceptOne()
    {
        Socket s;
        try { s = _listener!.Accept(); }
        catch (SocketException e) when (e.SocketErrorCode is SocketError.WouldBlock or SocketError.TryAgain or SocketError.Interrupted) { return; }
        catch (SocketException e) { Logger.Warn($"API server: accept failed: {e.Message}"); return; }
        if (_count >= MaxConnections && !EvictIdle())
        {
            Refuse(s);
            return;
        }
        s.Blocking = false;
        int slot = Array.IndexOf(_conns, null);
        var c = new ApiConnection(s, slot, Math.Min(InitialBuffer, _maxPayload + _maxHead), InitialBuffer)
        {
            DeadlineMs = Environment.TickCount64 + _timeoutMs,
        };
        _conns[slot] = c;
        _count++;
        _epoll!.Add(c.Fd, (ulong)slot, Libc.EPOLLIN);
    }

    /// <summary>
    /// Frees a slot by closing the connection idle longest; false when every connection is in the middle of a request.
    /// A candidate is serviced first, so a request that reached it while we were busy is answered, not lost.
    /// </summary>
    private bool EvictIdle()
    {
        int tried = 0; // bit per slot
        while (true)
        {
            ApiConnection? oldest = null;
            foreach (var c in _conns)
                if (c != null && c.IsIdle && (tried & (1 << c.Slot)) == 0 && (oldest == null || c.DeadlineMs < oldest.DeadlineMs))
                    oldest = c;
            if (oldest == null) return false;
            tried |= 1 << oldest.Slot;
            long deadline = oldest.DeadlineMs;
            ServiceOrClose(oldest, Libc.EPOLLIN);
            if (_conns[oldest.Slot] != oldest) return true; // it hung up (or failed) meanwhile: its slot is free
            if (oldest.DeadlineMs != deadline || !oldest.IsIdle) continue; // it just had a request: no longer the idlest
            Interlocked.Increment(ref _dropped);
            Close(oldest);
            return true;
        }
    }

    /// <summary>Answers a client that found every connection busy, as micro-http does, and hangs up.</summary>
    private void Refuse(Socket s)
    {
        Interlocked.Increment(ref _refused);
        try
        {
            s.Blocking = false;
            s.Send(HttpResponseWriter.ServerFull, SocketFlags.None, out _);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
        s.Dispose();
    }

    private void Close(ApiConnection c)
    {
        if (_conns[c.Slot] != c) return;
        try { _epoll!.Remove(c.Fd); } catch (SysException) { }
        c.Socket.Dispose();
        _conns[c.Slot] = null;
        _count--;
    }

    private void Service(ApiConnection c, uint events)
    {
        if (c.WantWrite && !Flush(c)) return; // still waiting for room to send the last responses
        bool eof = false;
        if ((events & (Libc.EPOLLIN | Libc.EPOLLHUP | Libc.EPOLLERR)) != 0) eof = Fill(c);
        Process(c);
        if (!Flush(c)) return;
        if (c.CloseAfterFlush || eof) Close(c);
    }

    /// <summary>Reads what the socket has; true when the peer closed its side.</summary>
    private bool Fill(ApiConnection c)
    {
        // The first bytes of a request on an idle connection start its clock: the time it idled before does not count.
        bool wasIdle = c.IsIdle;
        while (true)
        {
            if (c.InEnd == c.In.Length)
            {
                if (c.InStart > 0) c.Compact();
                else if (!c.Grow(_maxHead + _maxPayload)) return false; // full: Process decides
            }
            int room = c.In.Length - c.InEnd;
            int n = c.Socket.Receive(c.In.AsSpan(c.InEnd), SocketFlags.None, out var err);
            if (err == SocketError.WouldBlock || err == SocketError.Interrupted) return false;
            if (err != SocketError.Success) throw new SocketException((int)err);
            if (n == 0) return true;
            if (wasIdle)
            {
                c.DeadlineMs = Environment.TickCount64 + _timeoutMs;
                wasIdle = false;
            }
            c.InEnd += n;
            // A short read emptied the socket: the read that would only say "would block" is one syscall per request
            // saved. Whatever comes later, the peer's close included, wakes the level-triggered epoll again.
            if (n < room) return false;
        }
    }

    private void Process(ApiConnection c)
    {
        while (!c.CloseAfterFlush)
        {
            if (c.Discard > 0)
            {
                int drop = (int)Math.Min(c.Discard, c.InEnd - c.InStart);
                c.InStart += drop;
                c.Discard -= drop;
                if (c.Discard > 0) { c.InStart = c.InEnd = 0; return; }
            }
            var data = c.In.AsSpan(c.InStart, c.InEnd - c.InStart);
            if (data.IsEmpty) { c.InStart = c.InEnd = 0; return; }

            var st = HttpRequestParser.TryParse(data, _maxHead, out var head, out var error);
            if (st == HttpParseStatus.Incomplete) { MakeRoom(c); return; }
            if (st == HttpParseStatus.Error)
            {
                // micro-http's answer; then close, since where the next request would start is unknown.
                RespondHttpError(c, error!);
                c.CloseAfterFlush = true;
                return;
            }
            long len = head.BodyLength;
            if (len > _maxPayload)
            {
                // micro-http's answer too, but the length is known: the body is skipped and the connection serves on.
                RespondHttpError(c, $"Request payload with size {len} is larger than the limit of {_maxPayload} allowed by server.");
                c.InStart += head.HeadLength;
                c.Discard = len;
                if (!head.KeepAlive) c.CloseAfterFlush = true;
                continue;
            }
            if (data.Length < head.HeadLength + len)
            {
                if (head.ExpectContinue && !c.ContinueSent)
                {
                    HttpResponseWriter.WriteContinue(ref c.Out, ref c.OutEnd);
                    c.ContinueSent = true;
                }
                MakeRoom(c);
                return;
            }

            string method = PathCache.Method(data.Slice(head.MethodStart, head.MethodLength));
            string path = _paths.Get(data.Slice(head.PathStart, head.PathLength));
            string? body = len == 0 ? null : Encoding.UTF8.GetString(data.Slice(head.HeadLength, (int)len));
            c.InStart += head.HeadLength + (int)len;
            c.ContinueSent = false;

            var (response, deprecated) = Dispatch(method, path, body);
            Respond(c, response, head.KeepAlive, deprecated);
        }
    }

    /// <summary>
    /// Routes and serves one request, logging it as Firecracker does: the request received, then the outcome
    /// (success, or the error as text), then the deprecation warning when the request used a deprecated field.
    /// </summary>
    private (ApiResponse Response, bool Deprecated) Dispatch(string method, string path, string? body)
    {
        if (Logger.IsEnabled(LogLevel.Info)) Logger.Info(ApiLogLines.Received(method, path, body));
        ApiResponse r;
        ParsedRequest parsed = default;
        try
        {
            parsed = ApiRequestParser.Parse(method, path, body);
            if (parsed.Error != null)
            {
                RequestMetrics?.RecordRefused(parsed.Route);
                r = parsed.Error.ToResponse();
            }
            else
            {
                // Counted before the VMM runs it, as Firecracker counts while parsing.
                RequestMetrics?.RecordParsed(parsed.Route);
                r = _handler.Handle(parsed.Action!);
            }
        }
        catch (Exception e)
        {
            Logger.Error($"API request {method} {path} failed: {e}");
            r = ApiResponse.Fault(VmmController.InternalErrorMessage, 500);
        }
        if (r.Status >= 400)
        {
            if (Logger.IsEnabled(LogLevel.Error)) Logger.Error(ApiLogLines.Error(r.Status, parsed.Error?.Message ?? FaultText(r.Body)));
        }
        else if (Logger.IsEnabled(LogLevel.Info)) Logger.Info(ApiLogLines.Success(r.Status));
        if (parsed.Deprecation is { } deprecation)
        {
            RequestMetrics?.RecordDeprecated();
            Logger.Warn(deprecation);
        }
        return (r, parsed.Deprecation != null);
    }

    /// <summary>The fault_message of an error body, for the log line (the body itself when it has none).</summary>
    private static string FaultText(string? body)
    {
        if (body == null) return "";
        try
        {
            using var doc = System.Text.Json.JsonDocument.Parse(body);
            if (doc.RootElement.TryGetProperty("fault_message", out var m) && m.GetString() is { } s) return s;
        }
        catch (System.Text.Json.JsonException) { }
        return body;
    }

    private void Respond(ApiConnection c, ApiResponse r, bool keepAlive, bool deprecated = false)
    {
        if (!keepAlive) c.CloseAfterFlush = true;
        // An answer restarts the clock for the next request (and for sending this answer).
        c.DeadlineMs = Environment.TickCount64 + _timeoutMs;
        HttpResponseWriter.Write(ref c.Out, ref c.OutEnd, r.Status, r.Body, deprecated);
        Interlocked.Increment(ref _served);
    }

    private void RespondHttpError(ApiConnection c, string message)
    {
        if (Logger.IsEnabled(LogLevel.Error)) Logger.Error($"API Server error on retrieving incoming request: Parsing error: {message}");
        c.DeadlineMs = Environment.TickCount64 + _timeoutMs;
        HttpResponseWriter.WriteHttpError(ref c.Out, ref c.OutEnd, message);
        Interlocked.Increment(ref _served);
    }

    /// <summary>An unfinished request: move it to the buffer start and make sure the buffer can hold all of it.</summary>
    private void MakeRoom(ApiConnection c)
    {
        if (c.InStart > 0) c.Compact();
        if (c.InEnd == c.In.Length) c.Grow(_maxHead + _maxPayload);
    }

    /// <summary>Sends pending output; false when the socket is full (EPOLLOUT armed) or the connection was closed.</summary>
    private bool Flush(ApiConnection c)
    {
        while (c.OutEnd > c.OutStart)
        {
            int n = c.Socket.Send(c.Out.AsSpan(c.OutStart, c.OutEnd - c.OutStart), SocketFlags.None, out var err);
            if (err == SocketError.WouldBlock || err == SocketError.Interrupted)
            {
                // Wait for room only: no more requests are read until these responses are out.
                if (!c.WantWrite) { _epoll!.Modify(c.Fd, (ulong)c.Slot, Libc.EPOLLOUT); c.WantWrite = true; }
                return false;
            }
            if (err != SocketError.Success) { Close(c); return false; }
            c.OutStart += n;
        }
        c.OutStart = c.OutEnd = 0;
        if (c.WantWrite) { _epoll!.Modify(c.Fd, (ulong)c.Slot, Libc.EPOLLIN); c.WantWrite = false; }
        return true;
    }

    public void Dispose()
    {
        if (_thread != null)
        {
            _stopping = true;
            try { _stop?.Write(1); } catch (SysException) { }
            _thread.Join(TimeSpan.FromSeconds(5));
            _thread = null;
        }
        for (int i = 0; i < _conns.Length; i++)
        {
            _conns[i]?.Socket.Dispose();
            _conns[i] = null;
        }
        _count = 0;
        _listener?.Dispose();
        _listener = null;
        Cleanup();
    }

    /// <summary>
    /// Removes the socket file and nothing else: for a process about to exit under its seccomp filter, where closing
    /// sockets through the runtime could make syscalls the filter forbids (the kernel closes them at exit anyway).
    /// </summary>
    public void RemoveSocketFile()
    {
        if (!_bound) return;
        try { File.Delete(_socketPath); } catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
        _bound = false;
    }

    private void Cleanup()
    {
        _epoll?.Dispose(); _epoll = null;
        _stop?.Dispose(); _stop = null;
        RemoveSocketFile();
    }
}
