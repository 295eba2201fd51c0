using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Flint.PoolDaemon;

/// <summary>
/// A small HTTP/1.1 server for the pool's API, on a Unix socket and optionally a loopback TCP port. Strict on input
/// (Content-Length bodies only, no chunked encoding, a bounded head and body, printable ASCII targets) and bounded in
/// time: a client gets <see cref="HeadTimeout"/> to send a request head and <see cref="BodyTimeout"/> for its body, and
/// an idle keep-alive connection is closed after <see cref="IdleTimeout"/>. At most <see cref="MaxConnections"/> at
/// once; one more is answered 503 and closed. Handlers run one request at a time per connection.
/// </summary>
public sealed class HttpServer : IAsyncDisposable
{
    public const int MaxHeadBytes = 8192;
    public int MaxBodyBytes { get; init; } = 65 << 20;
    public int MaxConnections { get; init; } = 512;
    public TimeSpan HeadTimeout { get; init; } = TimeSpan.FromSeconds(10);
    public TimeSpan BodyTimeout { get; init; } = TimeSpan.FromSeconds(60);
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromSeconds(60);

    private readonly Func<HttpRequest, CancellationToken, Task<HttpResponse>> _handler;
    private readonly List<Socket> _listeners = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _loops = [];
    private int _connections;

    public HttpServer(Func<HttpRequest, CancellationToken, Task<HttpResponse>> handler) => _handler = handler;

    public void ListenUnix(string path)
    {
        if (File.Exists(path)) File.Delete(path); // a stale socket from an earlier run (the daemon owns this path)
        var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        s.Bind(new UnixDomainSocketEndPoint(path));
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite); // root's API: owner only
        Start(s);
    }

    /// <summary>Loopback only: the API has no authentication, so it is never offered beyond the host.</summary>
    public int ListenLoopback(IPAddress address, int port)
    {
        if (!IPAddress.IsLoopback(address)) throw new ArgumentException($"{address} is not a loopback address");
        var s = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        s.Bind(new IPEndPoint(address, port));
        Start(s);
        return ((IPEndPoint)s.LocalEndPoint!).Port;
    }

    private void Start(Socket s)
    {
        s.Listen(128);
        _listeners.Add(s);
        _loops.Add(Task.Run(() => AcceptLoop(s)));
    }

    private async Task AcceptLoop(Socket listener)
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket c;
            try { c = await listener.AcceptAsync(_stop.Token); }
            catch (OperationCanceledException) { return; }
            catch (ObjectDisposedException) { return; }
            catch (SocketException) { continue; }
            if (Interlocked.Increment(ref _connections) > MaxConnections)
            {
                Interlocked.Decrement(ref _connections);
                _ = RefuseAsync(c);
                continue;
            }
            _ = Task.Run(async () =>
            {
                try { await ServeAsync(c); }
                finally { Interlocked.Decrement(ref _connections); c.Dispose(); }
            });
        }
    }

    private static async Task RefuseAsync(Socket c)
    {
        using (c)
        {
            var r = HttpResponse.Fault(503, "Too many open connections.");
            try { await c.SendAsync(Format(r, keepAlive: false)).WaitAsync(TimeSpan.FromSeconds(1)); }
            catch (Exception) { }
        }
    }

    private async Task ServeAsync(Socket c)
    {
        var buf = new byte[MaxHeadBytes];
        int have = 0;
        bool first = true;
        while (!_stop.IsCancellationRequested)
        {
            // The head: bounded by IdleTimeout until its first byte on a kept-alive connection, then by HeadTimeout.
            int headEnd;
            using (var headCts = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token))
            {
                headCts.CancelAfter(first || have > 0 ? HeadTimeout : IdleTimeout);
                try
                {
                    while ((headEnd = buf.AsSpan(0, have).IndexOf("\r\n\r\n"u8)) < 0)
                    {
                        if (have == buf.Length) { await SendAsync(c, HttpResponse.Fault(400, "The request head is over 8192 bytes."), false); return; }
                        int n = await c.ReceiveAsync(buf.AsMemory(have), SocketFlags.None, headCts.Token);
                        if (n == 0) return;
                        if (have == 0 && !first) headCts.CancelAfter(HeadTimeout);
                        have += n;
                    }
                }
                catch (OperationCanceledException) { return; }
                catch (SocketException) { return; }
            }
            first = false;
            if (!TryParseHead(buf.AsSpan(0, headEnd), out var method, out var path, out var query, out long length, out bool keepAlive, out string? error))
            {
                await SendAsync(c, HttpResponse.Fault(400, error!), false);
                return;
            }
            if (length > MaxBodyBytes)
            {
                await SendAsync(c, HttpResponse.Fault(413, $"The body is over {MaxBodyBytes} bytes."), false);
                return;
            }
            var body = new byte[length];
            int already = Math.Min(have - (headEnd + 4), (int)length);
            buf.AsSpan(headEnd + 4, already).CopyTo(body);
            int rest = have - (headEnd + 4) - already;
            Buffer.BlockCopy(buf, headEnd + 4 + already, buf, 0, rest);
            have = rest;
            if (already < length)
            {
                using var bodyCts = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                bodyCts.CancelAfter(BodyTimeout);
                try
                {
                    int got = already;
                    while (got < length)
                    {
                        int n = await c.ReceiveAsync(body.AsMemory(got), SocketFlags.None, bodyCts.Token);
                        if (n == 0) return;
                        got += n;
                    }
                }
                catch (OperationCanceledException) { return; }
                catch (SocketException) { return; }
            }
            HttpResponse r;
            try { r = await _handler(new HttpRequest(method, path, query, body), _stop.Token); }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested) { r = HttpResponse.Fault(503, "flint-pool is stopping."); }
            catch (Exception e)
            {
                Console.Error.WriteLine($"flint-pool: internal error on {method} {path}: {e}");
                r = HttpResponse.Fault(500, "Internal error; see flint-pool's log.");
            }
            if (!await SendAsync(c, r, keepAlive) || !keepAlive) return;
        }
    }

    private static async Task<bool> SendAsync(Socket c, HttpResponse r, bool keepAlive)
    {
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30)); // a client that stops reading
            var data = Format(r, keepAlive);
            int sent = 0;
            while (sent < data.Length) sent += await c.SendAsync(data.AsMemory(sent), SocketFlags.None, cts.Token);
            return true;
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException or ObjectDisposedException) { return false; }
    }

    internal static byte[] Format(HttpResponse r, bool keepAlive)
    {
        var sb = new StringBuilder(160);
        sb.Append("HTTP/1.1 ").Append(r.Status).Append(' ').Append(Reason(r.Status)).Append("\r\nServer: flint-pool\r\n");
        sb.Append(keepAlive ? "Connection: keep-alive\r\n" : "Connection: close\r\n");
        if (r.Status != 204)
        {
            if (r.ContentType.Length > 0) sb.Append("Content-Type: ").Append(r.ContentType).Append("\r\n");
            sb.Append("Content-Length: ").Append(r.Body.Length).Append("\r\n");
        }
        if (r.Headers != null) foreach (var (n, v) in r.Headers) sb.Append(n).Append(": ").Append(v).Append("\r\n");
        sb.Append("\r\n");
        int headLen = Encoding.ASCII.GetByteCount(sb.ToString());
        var data = new byte[headLen + (r.Status == 204 ? 0 : r.Body.Length)];
        Encoding.ASCII.GetBytes(sb.ToString(), data);
        if (r.Status != 204) r.Body.CopyTo(data, headLen);
        return data;
    }

    private static string Reason(int s) => s switch
    {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Payload Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    };

    /// <summary>Request line and headers. Only Content-Length, Transfer-Encoding and Connection are interpreted.</summary>
    internal static bool TryParseHead(ReadOnlySpan<byte> head, out string method, out string path, out string query,
        out long length, out bool keepAlive, out string? error)
    {
        method = path = query = "";
        length = 0;
        keepAlive = true;
        error = null;
        int eol = head.IndexOf("\r\n"u8);
        var line = eol < 0 ? head : head[..eol];
        int sp1 = line.IndexOf((byte)' ');
        int sp2 = sp1 < 0 ? -1 : line[(sp1 + 1)..].IndexOf((byte)' ');
        if (sp1 <= 0 || sp2 <= 0) { error = "Invalid request line."; return false; }
        var m = line[..sp1];
        var target = line.Slice(sp1 + 1, sp2);
        var version = line[(sp1 + 1 + sp2 + 1)..];
        if (!(m.SequenceEqual("GET"u8) || m.SequenceEqual("PUT"u8) || m.SequenceEqual("POST"u8) || m.SequenceEqual("DELETE"u8)))
        { error = "Unsupported HTTP method."; return false; }
        if (!version.SequenceEqual("HTTP/1.1"u8) && !version.SequenceEqual("HTTP/1.0"u8)) { error = "Unsupported HTTP version."; return false; }
        if (target.Length == 0 || target[0] != '/' || target.Length > 1024) { error = "Invalid request target."; return false; }
        foreach (byte b in target) if (b is <= 0x20 or >= 0x7f) { error = "Invalid request target."; return false; }
        if (version.SequenceEqual("HTTP/1.0"u8)) keepAlive = false;
        method = Encoding.ASCII.GetString(m);
        int q = target.IndexOf((byte)'?');
        path = Encoding.ASCII.GetString(q < 0 ? target : target[..q]);
        query = q < 0 ? "" : Encoding.ASCII.GetString(target[(q + 1)..]);
        bool sawLength = false;
        var rest = eol < 0 ? ReadOnlySpan<byte>.Empty : head[(eol + 2)..];
        while (!rest.IsEmpty)
        {
            int e = rest.IndexOf("\r\n"u8);
            var h = e < 0 ? rest : rest[..e];
            rest = e < 0 ? ReadOnlySpan<byte>.Empty : rest[(e + 2)..];
            int colon = h.IndexOf((byte)':');
            if (colon <= 0) { error = "Invalid header."; return false; }
            var name = h[..colon];
            var value = h[(colon + 1)..].Trim((byte)' ').Trim((byte)'\t');
            if (System.Text.Ascii.EqualsIgnoreCase(name, "Content-Length"u8))
            {
                if (value.Length is 0 or > 10 || sawLength) { error = "Invalid Content-Length."; return false; }
                long n = 0;
                foreach (byte b in value)
                {
                    if (b is < (byte)'0' or > (byte)'9') { error = "Invalid Content-Length."; return false; }
                    n = n * 10 + (b - '0');
                }
                length = n;
                sawLength = true;
            }
            else if (System.Text.Ascii.EqualsIgnoreCase(name, "Transfer-Encoding"u8)) { error = "Transfer-Encoding is not supported; send a Content-Length."; return false; }
            else if (System.Text.Ascii.EqualsIgnoreCase(name, "Connection"u8))
            {
                if (System.Text.Ascii.EqualsIgnoreCase(value, "close"u8)) keepAlive = false;
                else if (System.Text.Ascii.EqualsIgnoreCase(value, "keep-alive"u8)) keepAlive = true;
            }
        }
        return true;
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        foreach (var l in _listeners) l.Dispose();
        try { await Task.WhenAll(_loops).WaitAsync(TimeSpan.FromSeconds(5)); } catch (Exception) { }
    }
}
