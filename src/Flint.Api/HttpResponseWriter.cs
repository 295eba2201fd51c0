using System.Text;

namespace Flint.Api;

/// <summary>
/// Formats API responses into a reusable byte buffer (no allocation beyond growing that buffer), in micro-http's exact
/// shape, which Firecracker answers with: a status line with the code and an empty reason ("HTTP/1.1 200 "), then
/// "Server: Firecracker API", "Connection: keep-alive", "Deprecation: true" when the request used a deprecated field,
/// and Content-Type/Content-Length on every answer but 100 and 204. Clients written against Firecracker (and its test
/// suite) compare these bytes.
/// </summary>
public static class HttpResponseWriter
{
    /// <summary>Firecracker's log wording for a status (its "Received Error. Status code: ..." lines).</summary>
    public static string Reason(int status) => status switch
    {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload too large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    };

    /// <summary>
    /// micro-http's answer to a client that finds every connection taken, byte for byte: a bare "503" status line and
    /// a JSON body under "error", not "fault_message". Clients written against Firecracker match on it.
    /// </summary>
    public static ReadOnlySpan<byte> ServerFull =>
        "HTTP/1.1 503\r\nServer: Firecracker API\r\nConnection: close\r\nContent-Length: 40\r\n\r\n{ \"error\": \"Too many open connections\" }"u8;

    private static ReadOnlySpan<byte> CommonHeaders => "\r\nServer: Firecracker API\r\nConnection: keep-alive\r\n"u8;

    /// <summary>Appends a full response at <paramref name="end"/>, growing <paramref name="buf"/> when needed.</summary>
    public static void Write(ref byte[] buf, ref int end, int status, string? body, bool deprecation = false)
    {
        int bodyBytes = body == null ? 0 : Encoding.UTF8.GetByteCount(body);
        Ensure(ref buf, end, 192 + bodyBytes);
        var span = buf.AsSpan(end);
        int n = Put(span, "HTTP/1.1 "u8);
        status.TryFormat(span[n..], out int w); n += w;
        span[n++] = (byte)' ';
        n += Put(span[n..], CommonHeaders);
        if (deprecation) n += Put(span[n..], "Deprecation: true\r\n"u8);
        // micro-http: every status but 100 and 204 carries a length (0 without a body).
        if (status is not (100 or 204))
        {
            n += Put(span[n..], "Content-Type: application/json\r\nContent-Length: "u8);
            bodyBytes.TryFormat(span[n..], out w); n += w;
            n += Put(span[n..], "\r\n"u8);
        }
        n += Put(span[n..], "\r\n"u8);
        if (body != null) n += Encoding.UTF8.GetBytes(body, span[n..]);
        end += n;
    }

    /// <summary>
    /// micro-http's answer to a request it could not parse (bad request line, header, or a body over the limit):
    /// status 400 and <c>{ "error": "MESSAGE\nAll previous unanswered requests will be dropped." }</c>, the newline
    /// raw inside the string as micro-http writes it.
    /// </summary>
    public static void WriteHttpError(ref byte[] buf, ref int end, string message) =>
        Write(ref buf, ref end, 400, "{ \"error\": \"" + message + "\nAll previous unanswered requests will be dropped.\" }");

    /// <summary>micro-http's interim answer to "Expect: 100-continue".</summary>
    public static void WriteContinue(ref byte[] buf, ref int end) => Write(ref buf, ref end, 100, null);

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
