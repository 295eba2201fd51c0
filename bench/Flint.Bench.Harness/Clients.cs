using System.Net.Sockets;
using System.Text;

namespace Flint.Bench.Harness;

/// <summary>A minimal keep-alive HTTP/1.1 client over a Unix socket (Content-Length bodies only).</summary>
internal sealed class UdsHttp : IDisposable
{
    private readonly Socket _s;
    private readonly byte[] _buf = new byte[65536];
    private int _have;

    private UdsHttp(Socket s) => _s = s;

    /// <summary>One connect attempt; null while the socket is not there or not listening yet.</summary>
    public static UdsHttp? TryConnect(string path)
    {
        if (!File.Exists(path)) return null;
        var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try { s.Connect(new UnixDomainSocketEndPoint(path)); return new UdsHttp(s); }
        catch (SocketException) { s.Dispose(); return null; }
    }

    public static byte[] Request(string method, string path, string? body = null)
    {
        var sb = new StringBuilder();
        sb.Append(method).Append(' ').Append(path).Append(" HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n");
        if (body != null) sb.Append("Content-Type: application/json\r\nContent-Length: ").Append(Encoding.UTF8.GetByteCount(body)).Append("\r\n");
        sb.Append("\r\n");
        if (body != null) sb.Append(body);
        return Encoding.UTF8.GetBytes(sb.ToString());
    }

    /// <summary>Sends a prepared request and reads the whole response; returns (status, body).</summary>
    public (int Status, string Body) Send(byte[] request)
    {
        _s.Send(request);
        while (true)
        {
            int end = _buf.AsSpan(0, _have).IndexOf("\r\n\r\n"u8);
            if (end >= 0)
            {
                string head = Encoding.ASCII.GetString(_buf, 0, end);
                int status = int.Parse(head.AsSpan(9, 3));
                int len = 0;
                foreach (var line in head.Split("\r\n"))
                    if (line.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase)) len = int.Parse(line.AsSpan(15).Trim());
                int total = end + 4 + len;
                while (_have < total) Fill();
                string body = Encoding.UTF8.GetString(_buf, end + 4, len);
                Buffer.BlockCopy(_buf, total, _buf, 0, _have - total);
                _have -= total;
                return (status, body);
            }
            Fill();
        }
    }

    private void Fill()
    {
        int n = _s.Receive(_buf, _have, _buf.Length - _have, SocketFlags.None);
        if (n == 0) throw new IOException("connection closed by the server");
        _have += n;
    }

    public void Dispose() => _s.Dispose();
}

/// <summary>A minimal QMP client: one JSON object per line; events are skipped while waiting for a reply.</summary>
internal sealed class Qmp : IDisposable
{
    private readonly Socket _s;
    private readonly byte[] _buf = new byte[65536];
    private int _have;

    private Qmp(Socket s) => _s = s;

    public static Qmp? TryConnect(string path)
    {
        if (!File.Exists(path)) return null;
        var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try { s.Connect(new UnixDomainSocketEndPoint(path)); return new Qmp(s); }
        catch (SocketException) { s.Dispose(); return null; }
    }

    public string ReadLine()
    {
        while (true)
        {
            int nl = _buf.AsSpan(0, _have).IndexOf((byte)'\n');
            if (nl >= 0)
            {
                string line = Encoding.UTF8.GetString(_buf, 0, nl).TrimEnd('\r');
                Buffer.BlockCopy(_buf, nl + 1, _buf, 0, _have - nl - 1);
                _have -= nl + 1;
                return line;
            }
            int n = _s.Receive(_buf, _have, _buf.Length - _have, SocketFlags.None);
            if (n == 0) throw new IOException("QMP connection closed");
            _have += n;
        }
    }

    /// <summary>Reads the greeting ({"QMP": ...}).</summary>
    public string Greeting()
    {
        var l = ReadLine();
        if (!l.StartsWith("{\"QMP\"", StringComparison.Ordinal)) throw new IOException($"unexpected QMP greeting: {l}");
        return l;
    }

    public static byte[] Command(string name) => Encoding.UTF8.GetBytes($"{{\"execute\":\"{name}\"}}\n");

    /// <summary>Sends a prepared command; returns the reply line (skipping asynchronous events).</summary>
    public string Execute(byte[] command)
    {
        _s.Send(command);
        while (true)
        {
            var l = ReadLine();
            if (l.StartsWith("{\"return\"", StringComparison.Ordinal)) return l;
            if (l.StartsWith("{\"error\"", StringComparison.Ordinal)) throw new IOException($"QMP error: {l}");
        }
    }

    public void Dispose() => _s.Dispose();
}
