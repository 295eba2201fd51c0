using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;

namespace Flint.Vmm.Tests;

/// <summary>One HTTP/1.1 request and its whole answer over a connected API socket (keep-alive: the socket stays usable),
/// for the KVM tests that drive flint request by request.</summary>
internal static class ApiHttp
{
    public static (int Status, string Body) Request(Socket s, string method, string path, string? body = null)
    {
        var b = body ?? "";
        var req = $"{method} {path} HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n" +
                  (body != null ? $"Content-Type: application/json\r\nContent-Length: {Encoding.UTF8.GetByteCount(b)}\r\n" : "") + "\r\n" + b;
        s.Send(Encoding.UTF8.GetBytes(req));
        var buf = new byte[65536];
        int n = 0;
        while (true)
        {
            int got = s.Receive(buf, n, buf.Length - n, SocketFlags.None);
            if (got == 0) throw new IOException("flint closed the API connection");
            n += got;
            var text = Encoding.UTF8.GetString(buf, 0, n);
            int he = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
            if (he < 0) continue;
            var m = Regex.Match(text, "Content-Length: (\\d+)", RegexOptions.IgnoreCase);
            int len = m.Success ? int.Parse(m.Groups[1].Value) : 0;
            if (n < he + 4 + len) continue;
            return (int.Parse(text.Substring(9, 3)), text.Substring(he + 4, len));
        }
    }
}
