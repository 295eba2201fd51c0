using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace Flint.TestGuest;

/// <summary>What an agent answered to one INVOKE: the RESULT line's id and status, and the result bytes.</summary>
public sealed record AgentResult(ulong Id, int Status, byte[] Body)
{
    public string Text => Encoding.UTF8.GetString(Body);
}

/// <summary>
/// A minimal host side of the agent protocol (docs/agent-protocol.md) for tests: the in-guest agents (the test guest's
/// agent mode, guest/agent/flint-agent) over a Unix socket or Flint's hybrid vsock. Not the pool's client: it throws on
/// anything unexpected, which is what a test wants. Every read is bounded by the I/O timeout.
/// </summary>
public sealed class AgentWire : IDisposable
{
    public const uint DefaultPort = 5005;
    private readonly Socket _s;
    private readonly byte[] _buf = new byte[64 * 1024];
    private int _len, _pos;

    public AgentWire(Socket connected, TimeSpan ioTimeout)
    {
        _s = connected;
        _s.ReceiveTimeout = _s.SendTimeout = (int)ioTimeout.TotalMilliseconds;
    }

    public void Dispose() => _s.Dispose();

    /// <summary>Connects to a Unix socket, retrying until it accepts (the agent may still be starting).</summary>
    public static AgentWire ConnectUnix(string path, TimeSpan within, TimeSpan? ioTimeout = null)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                s.Connect(new UnixDomainSocketEndPoint(path));
                return new AgentWire(s, ioTimeout ?? TimeSpan.FromSeconds(10));
            }
            catch (SocketException) when (sw.Elapsed < within)
            {
                s.Dispose();
                Thread.Sleep(20);
            }
        }
    }

    /// <summary>
    /// Connects through Flint's hybrid vsock: "CONNECT port\n" on the VM's uds_path, "OK n\n" back. Retries (a guest
    /// not yet listening answers with a reset, i.e. EOF) until <paramref name="within"/> has passed.
    /// </summary>
    public static AgentWire ConnectHybridVsock(string udsPath, uint port, TimeSpan within, TimeSpan? ioTimeout = null)
    {
        var sw = Stopwatch.StartNew();
        while (true)
        {
            var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            var w = new AgentWire(s, ioTimeout ?? TimeSpan.FromSeconds(10));
            try
            {
                s.Connect(new UnixDomainSocketEndPoint(udsPath));
                w.SendLine($"CONNECT {port}");
                if (w.ReadLine() is { } ok && ok.StartsWith("OK ", StringComparison.Ordinal)) return w;
            }
            catch (SocketException) { }
            w.Dispose();
            if (sw.Elapsed >= within) throw new TimeoutException($"no agent on vsock port {port} behind {udsPath} after {within}");
            Thread.Sleep(100);
        }
    }

    public void Send(ReadOnlySpan<byte> data)
    {
        while (data.Length > 0) data = data[_s.Send(data)..];
    }

    public void SendLine(string line) => Send(Encoding.ASCII.GetBytes(line + "\n"));

    private bool Fill()
    {
        _len = _s.Receive(_buf);
        _pos = 0;
        return _len > 0;
    }

    /// <summary>The next line without its '\n', or null on EOF. Throws past <paramref name="max"/> bytes.</summary>
    public string? ReadLine(int max = 256)
    {
        var line = new List<byte>();
        while (true)
        {
            if (_pos == _len && !Fill()) return line.Count == 0 ? null : throw new EndOfStreamException("EOF inside a line");
            byte b = _buf[_pos++];
            if (b == '\n') return Encoding.Latin1.GetString(line.ToArray());
            if (line.Count == max) throw new InvalidDataException($"line longer than {max} bytes");
            line.Add(b);
        }
    }

    public byte[] ReadExact(int n)
    {
        var r = new byte[n];
        int got = 0;
        while (got < n)
        {
            if (_pos == _len && !Fill()) throw new EndOfStreamException($"EOF after {got} of {n} bytes");
            int k = Math.Min(_len - _pos, n - got);
            _buf.AsSpan(_pos, k).CopyTo(r.AsSpan(got));
            _pos += k;
            got += k;
        }
        return r;
    }

    /// <summary>True when the peer closes the connection with nothing more to read within the I/O timeout.</summary>
    public bool ReadsEof()
    {
        try { return _pos == _len && !Fill(); }
        catch (SocketException) { return false; }
    }

    public string? Ping()
    {
        SendLine("PING");
        return ReadLine();
    }

    /// <summary>Sends INVOKE and reads the RESULT (throws when the answer is not one).</summary>
    public AgentResult Invoke(ulong id, ReadOnlySpan<byte> payload)
    {
        SendInvoke(id, payload);
        return ReadResult();
    }

    public AgentResult Invoke(ulong id, string payload) => Invoke(id, Encoding.UTF8.GetBytes(payload));

    public void SendInvoke(ulong id, ReadOnlySpan<byte> payload)
    {
        // one send for line + payload when small: the agents must cope with any split, this is the common case
        var msg = new byte[Encoding.ASCII.GetByteCount($"INVOKE {id} {payload.Length}\n") + payload.Length];
        int h = Encoding.ASCII.GetBytes($"INVOKE {id} {payload.Length}\n", msg);
        payload.CopyTo(msg.AsSpan(h));
        Send(msg);
    }

    public AgentResult ReadResult()
    {
        var line = ReadLine() ?? throw new EndOfStreamException("EOF instead of a RESULT line");
        var p = line.Split(' ');
        if (p.Length != 4 || p[0] != "RESULT") throw new InvalidDataException($"not a RESULT line: {line}");
        var id = ulong.Parse(p[1], CultureInfo.InvariantCulture);
        var status = int.Parse(p[2], CultureInfo.InvariantCulture);
        var n = int.Parse(p[3], CultureInfo.InvariantCulture);
        return new AgentResult(id, status, ReadExact(n));
    }
}
