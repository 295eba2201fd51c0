using System.Net.Sockets;
using System.Text;

namespace Flint.Client.Tests;

/// <summary>A request as the fake server read it off the socket.</summary>
internal sealed record RecordedRequest(string Method, string Path, IReadOnlyDictionary<string, string> Headers, string Body);

/// <summary>What the fake server does with a request: answer (status, body), or never answer (null).</summary>
internal delegate (int Status, string Body)? FakeHandler(RecordedRequest request);

/// <summary>
/// A minimal HTTP/1.1 server on a real Unix socket, for testing the client's transport: it records each request,
/// counts connections, answers through a handler (or never), and can close each connection after one answer.
/// </summary>
internal sealed class FakeApiServer : IDisposable
{
    private readonly Socket _listener = new(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
    private readonly CancellationTokenSource _stop = new();
    private readonly FakeHandler _handler;
    private readonly List<RecordedRequest> _requests = [];
    private readonly List<Socket> _connections = [];
    private readonly string _dir;
    private int _accepted;

    public FakeApiServer(FakeHandler handler, bool closeAfterEachAnswer = false)
    {
        _handler = handler;
        CloseAfterEachAnswer = closeAfterEachAnswer;
        _dir = Path.Combine(Path.GetTempPath(), "flint-client-tests", Guid.NewGuid().ToString("n"));
        Directory.CreateDirectory(_dir);
        SocketPath = Path.Combine(_dir, "api.sock");
        _listener.Bind(new UnixDomainSocketEndPoint(SocketPath));
        _listener.Listen(16);
        _ = AcceptLoopAsync();
    }

    public string SocketPath { get; }
    public bool CloseAfterEachAnswer { get; }
    public int AcceptedConnections => Volatile.Read(ref _accepted);

    public IReadOnlyList<RecordedRequest> Requests
    {
        get { lock (_requests) return _requests.ToList(); }
    }

    /// <summary>The JSON body for a 2xx status, or Firecracker's error body for a fault.</summary>
    public static (int, string) Fault(int status, string message) => (status, $"{{\"fault_message\":\"{message}\"}}");

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket conn;
            try { conn = await _listener.AcceptAsync(_stop.Token); }
            catch (Exception) { return; }
            Interlocked.Increment(ref _accepted);
            lock (_connections) _connections.Add(conn);
            _ = ServeAsync(conn);
        }
    }

    private async Task ServeAsync(Socket conn)
    {
        try
        {
            await using var stream = new NetworkStream(conn, ownsSocket: true);
            var buffer = new List<byte>();
            var chunk = new byte[8192];
            while (!_stop.IsCancellationRequested)
            {
                var request = TryParse(buffer);
                if (request == null)
                {
                    int n = await stream.ReadAsync(chunk, _stop.Token);
                    if (n == 0) return;
                    buffer.AddRange(chunk.AsSpan(0, n));
                    continue;
                }
                lock (_requests) _requests.Add(request);
                var answer = _handler(request);
                if (answer is not { } a)
                {
                    await Task.Delay(Timeout.Infinite, _stop.Token); // never answers: the client's deadline must end the wait
                    return;
                }
                var head = $"HTTP/1.1 {a.Status} X\r\nServer: fake\r\n" +
                           (a.Body.Length > 0 ? $"Content-Type: application/json\r\nContent-Length: {Encoding.UTF8.GetByteCount(a.Body)}\r\n"
                                              : "Content-Length: 0\r\n") +
                           (CloseAfterEachAnswer ? "Connection: close\r\n" : "") + "\r\n";
                await stream.WriteAsync(Encoding.UTF8.GetBytes(head + a.Body), _stop.Token);
                if (CloseAfterEachAnswer) return;
            }
        }
        catch (Exception)
        {
            // The client went away or the server is stopping.
        }
    }

    /// <summary>Takes one complete request off the front of <paramref name="buffer"/>, or null if it is not all there yet.</summary>
    private static RecordedRequest? TryParse(List<byte> buffer)
    {
        var text = Encoding.UTF8.GetString(buffer.ToArray());
        int headEnd = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        if (headEnd < 0) return null;
        var lines = text[..headEnd].Split("\r\n");
        var start = lines[0].Split(' ');
        var headers = lines.Skip(1).Select(l => l.Split(':', 2)).ToDictionary(p => p[0].Trim().ToLowerInvariant(), p => p[1].Trim());
        int length = headers.TryGetValue("content-length", out var cl) ? int.Parse(cl) : 0;
        int headBytes = Encoding.UTF8.GetByteCount(text[..(headEnd + 4)]);
        if (buffer.Count < headBytes + length) return null;
        var body = Encoding.UTF8.GetString(buffer.GetRange(headBytes, length).ToArray());
        buffer.RemoveRange(0, headBytes + length);
        return new RecordedRequest(start[0], start[1], headers, body);
    }

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Dispose();
        lock (_connections) foreach (var c in _connections) c.Dispose();
        try { Directory.Delete(_dir, true); } catch (IOException) { }
    }
}
