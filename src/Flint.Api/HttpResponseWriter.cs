using System.Text;

namespace Flint.Api;

/// <summary>Formats API responses into a reusable byte buffer (no allocation beyond growing that buffer).</summary>
public static class HttpResponseWriter
{
    public static string Reason(int status) => status switch
    {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Payload Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    };

    private static readonly byte[] Continue = "HTTP/1.1 100 Continue\r\n\r\n"u8.ToArray();

    /// <summary>
    /// micro-http's answer to a client that finds every connection taken, byte for byte but for the Server header
    /// (ours names Flint, as every other answer does): a bare "503" status line and a JSON body under "error", not
    /// "fault_message". Clients written against Firecracker match on it.
    /// </summary>
    public static ReadOnlySpan<byte> ServerFull =>
        "HTTP/1.1 503\r\nServer: Flint API\r\nConnection: close\r\nContent-Length: 40\r\n\r\n{ \"error\": \"Too many open connections\" }"u8;

    /// <summary>Appends a full response at <paramref name="end"/>, growing <paramref name="buf"/> when needed.</summary>
    public static void Write(ref byte[] buf, ref int end, int status, string? body, bool keepAlive)
    {
        int bodyBytes = body == null ? 0 : Encoding.UTF8.GetByteCount(body);
        Ensure(ref buf, end, 160 + bodyBytes);
        var span = buf.AsSpan(end);
        int n = 0;
        n += Put(span[n..], "HTTP/1.1 "u8);
        status.TryFormat(span[n..], out int w); n += w;
        span[n++] = (byte)' ';
        n += Encoding.ASCII.GetBytes(Reason(status), span[n..]);
        n += Put(span[n..], "\r\nServer: Flint API\r\nConnection: "u8);
        n += Put(span[n..], keepAlive ? "keep-alive\r\n"u8 : "close\r\n"u8);
        if (body != null)
        {
            n += Put(span[n..], "Content-Type: application/json\r\nContent-Length: "u8);
            bodyBytes.TryFormat(span[n..], out w); n += w;
            n += Put(span[n..], "\r\n\r\n"u8);
            n += Encoding.UTF8.GetBytes(body, span[n..]);
        }
        else
        {
            n += Put(span[n..], "\r\n"u8);
        }
        end += n;
    }

    public static void WriteContinue(ref byte[] buf, ref int end)
    {
        Ensure(ref buf, end, Continue.Length);
        Continue.CopyTo(buf, end);
        end += Continue.Length;
    }

    private static int Put(Span<byte> dst, ReadOnlySpan<byte> src)
    {
        src.CopyTo(dst);
        return src.Length;
    }

    private static void Ensure(ref byte[] buf, int used, int more)
    {
        if (buf.Length - used >= more) return;
        int size = Math.Max(buf.Length * 2, used + more);
        Array.Resize(ref buf, size);
    }
}
