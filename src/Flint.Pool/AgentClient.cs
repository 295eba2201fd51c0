using System.Buffers.Text;
using System.Net.Sockets;
using System.Text;

namespace Flint.Pool;

/// <summary>
/// The host side of the in-guest agent protocol, over Flint's vsock Unix socket:
/// <c>CONNECT &lt;port&gt;\n</c> -> <c>OK &lt;n&gt;\n</c>; then one exchange at a time: <c>PING\n</c> -> <c>PONG\n</c>,
/// <c>INVOKE &lt;id&gt; &lt;n&gt;\n</c> + n bytes -> <c>RESULT &lt;id&gt; &lt;status&gt; &lt;n&gt;\n</c> + n bytes;
/// anything else -> <c>ERROR &lt;text&gt;\n</c> and close.
/// The guest is hostile: every read is bounded in size (lines, result length) and in time (each call's deadline), and
/// an answer that is not exactly the protocol is an <see cref="AgentException"/>, never a hang or a large allocation.
/// Not thread-safe: one exchange at a time, as the protocol says.
/// </summary>
public sealed class AgentClient : IDisposable
{
    /// <summary>No protocol line is longer: "RESULT" + an id + two numbers.</summary>
    public const int MaxLineBytes = 256;

    private readonly Socket _socket;
    private readonly byte[] _buf = new byte[64 * 1024];
    private int _start, _end;
    private bool _broken;

    private AgentClient(Socket socket) => _socket = socket;

    /// <summary>Connects to <paramref name="udsPath"/> and asks Flint for a stream to the guest's vsock port.</summary>
    public static async Task<AgentClient> ConnectAsync(string udsPath, int port, TimeSpan timeout, CancellationToken ct)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        var client = new AgentClient(socket);
        try
        {
            await client.Bounded(async t =>
            {
                try { await socket.ConnectAsync(new UnixDomainSocketEndPoint(udsPath), t); }
                catch (SocketException e) { throw new AgentException(AgentFailure.Closed, $"cannot connect to the VM's vsock socket {udsPath}: {e.SocketErrorCode}", e); }
                await client.SendAsync(Encoding.ASCII.GetBytes($"CONNECT {port}\n"), t);
                var line = await client.ReadLineAsync(t);
                if (!line.StartsWith("OK "u8) || line.Length < 4 || !AllDigits(line.AsSpan(3)))
                    throw Garbage("CONNECT", line);
                return 0;
            }, timeout, "CONNECT", ct);
            return client;
        }
        catch
        {
            client.Dispose();
            throw;
        }
    }

    public async Task PingAsync(TimeSpan timeout, CancellationToken ct)
    {
        await Bounded(async t =>
        {
            await SendAsync("PING\n"u8.ToArray(), t);
            var line = await ReadLineAsync(t);
            if (!line.SequenceEqual("PONG"u8)) throw Garbage("PING", line);
            return 0;
        }, timeout, "PING", ct);
    }

    /// <summary>One invocation. <paramref name="id"/> is printable ASCII without spaces (the pool's counter).</summary>
    public Task<InvokeResult> InvokeAsync(string id, ReadOnlyMemory<byte> payload, int maxResultBytes, TimeSpan timeout, CancellationToken ct) =>
        Bounded(async t =>
        {
            byte[] head = Encoding.ASCII.GetBytes($"INVOKE {id} {payload.Length}\n");
            try
            {
                await SendAsync(head, t);
                if (payload.Length > 0) await SendAsync(payload, t);
            }
            catch (SocketException) when (_start < _end || _socket.Available > 0)
            {
                // The agent refused the request line (e.g. "ERROR payload too large") and closed before taking the
                // payload: its answer is already here, and says more than the failed send.
            }
            var line = await ReadLineAsync(t);
            if (line.StartsWith("ERROR"u8))
            {
                _broken = true;
                throw new AgentException(AgentFailure.AgentError, "the agent answered: " + Printable(line));
            }
            // RESULT <id> <status> <n>
            if (!line.StartsWith("RESULT "u8)) throw Garbage("INVOKE", line);
            var rest = line[7..];
            int sp = rest.IndexOf((byte)' ');
            if (sp < 0 || !rest.AsSpan(0, sp).SequenceEqual(Encoding.ASCII.GetBytes(id))) throw Garbage("INVOKE (id)", line);
            rest = rest[(sp + 1)..];
            sp = rest.IndexOf((byte)' ');
            if (sp < 0) throw Garbage("INVOKE", line);
            var statusText = rest[..sp];
            var lengthText = rest[(sp + 1)..];
            if (!(statusText.Length is > 0 and <= 11) || !Utf8Parser.TryParse(statusText, out int status, out int used) || used != statusText.Length)
                throw Garbage("INVOKE (status)", line);
            if (!(lengthText.Length is > 0 and <= 10) || !AllDigits(lengthText) || !long.TryParse(Encoding.ASCII.GetString(lengthText), out long n))
                throw Garbage("INVOKE (length)", line);
            if (n > maxResultBytes)
            {
                _broken = true;
                throw new AgentException(AgentFailure.Garbage, $"the agent's result is {n} bytes, over the limit of {maxResultBytes}");
            }
            var body = new byte[n];
            await ReadExactAsync(body, t);
            return new InvokeResult(status, body);
        }, timeout, "INVOKE", ct);

    public void Dispose()
    {
        _broken = true;
        _socket.Dispose();
    }

    /// <summary>Runs one exchange under a deadline; a timeout or a failure leaves the connection broken for good.</summary>
    private async Task<T> Bounded<T>(Func<CancellationToken, Task<T>> exchange, TimeSpan timeout, string what, CancellationToken ct)
    {
        if (_broken) throw new AgentException(AgentFailure.Closed, "the agent connection was closed after an earlier failure");
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        cts.CancelAfter(timeout);
        try
        {
            return await exchange(cts.Token);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            _broken = true;
            throw new AgentException(AgentFailure.Timeout, $"the agent did not answer {what} within {timeout.TotalMilliseconds:0} ms");
        }
        catch (SocketException e)
        {
            _broken = true;
            throw new AgentException(AgentFailure.Closed, $"the agent connection failed during {what}: {e.SocketErrorCode}", e);
        }
        catch (AgentException)
        {
            _broken = true;
            throw;
        }
        catch (OperationCanceledException)
        {
            _broken = true;
            throw;
        }
    }

    private async Task SendAsync(ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        while (!data.IsEmpty)
        {
            int n = await _socket.SendAsync(data, SocketFlags.None, ct);
            data = data[n..];
        }
    }

    /// <summary>Reads one '\n'-terminated line (without the '\n'), at most <see cref="MaxLineBytes"/>.</summary>
    private async Task<byte[]> ReadLineAsync(CancellationToken ct)
    {
        while (true)
        {
            int nl = _buf.AsSpan(_start, _end - _start).IndexOf((byte)'\n');
            if (nl >= 0)
            {
                var line = _buf.AsSpan(_start, nl).ToArray();
                _start += nl + 1;
                return line;
            }
            if (_end - _start >= MaxLineBytes)
                throw new AgentException(AgentFailure.Garbage, $"the agent sent a line longer than {MaxLineBytes} bytes: {Printable(_buf.AsSpan(_start, 64))}...");
            await FillAsync(ct);
        }
    }

    private async Task ReadExactAsync(Memory<byte> dst, CancellationToken ct)
    {
        while (!dst.IsEmpty)
        {
            if (_end == _start) await FillAsync(ct);
            int n = Math.Min(dst.Length, _end - _start);
            _buf.AsMemory(_start, n).CopyTo(dst);
            _start += n;
            dst = dst[n..];
        }
    }

    private async Task FillAsync(CancellationToken ct)
    {
        if (_start == _end) _start = _end = 0;
        else if (_end == _buf.Length)
        {
            Buffer.BlockCopy(_buf, _start, _buf, 0, _end - _start);
            _end -= _start;
            _start = 0;
        }
        int n = await _socket.ReceiveAsync(_buf.AsMemory(_end), SocketFlags.None, ct);
        if (n == 0) throw new AgentException(AgentFailure.Closed, "the agent closed the connection (the VM exited or its agent is not listening)");
        _end += n;
    }

    private static AgentException Garbage(string what, ReadOnlySpan<byte> line) =>
        new(AgentFailure.Garbage, $"the agent's answer to {what} is not the protocol: '{Printable(line)}'");

    private static bool AllDigits(ReadOnlySpan<byte> s)
    {
        foreach (byte c in s) if (c is < (byte)'0' or > (byte)'9') return false;
        return s.Length > 0;
    }

    /// <summary>A guest's bytes made safe to put in an error message: printable ASCII, at most 80 characters.</summary>
    public static string Printable(ReadOnlySpan<byte> s)
    {
        var sb = new StringBuilder(Math.Min(s.Length, 80));
        foreach (byte c in s[..Math.Min(s.Length, 80)]) sb.Append(c is >= 0x20 and < 0x7f ? (char)c : '?');
        return sb.ToString();
    }
}
