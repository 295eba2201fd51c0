namespace Flint.Api;

public enum HttpParseStatus { Incomplete, Complete, Error }

/// <summary>An HTTP/1.x request head, as offsets into the connection's buffer: parsing allocates nothing.</summary>
public struct HttpRequestHead
{
    public int MethodStart, MethodLength;
    public int PathStart, PathLength;
    /// <summary>Bytes from the start of the request line to the end of the blank line after the headers.</summary>
    public int HeadLength;
    /// <summary>-1 when the request has no Content-Length header.</summary>
    public long ContentLength;
    public int VersionMinor;
    public bool KeepAlive, ExpectContinue;

    public readonly long BodyLength => ContentLength < 0 ? 0 : ContentLength;
}

/// <summary>
/// A strict HTTP/1.0-1.1 request-head parser (request line + headers, CRLF line ends) over a byte span. Only what
/// the API needs is interpreted: Content-Length, Transfer-Encoding, Connection and Expect.
/// </summary>
public static class HttpRequestParser
{
    public const int DefaultMaxHeadBytes = 8192;

    // micro-http's RequestError texts (src/common/mod.rs), which Firecracker's HTTP layer answers with.
    public const string ErrHeadTooLarge = "Invalid request.";
    public const string ErrRequestLine = "Invalid request.";
    public const string ErrMethod = "Invalid HTTP Method: Unsupported HTTP method.";
    public const string ErrUriEmpty = "Invalid URI: Empty URI not allowed.";
    public const string ErrUri = "Invalid URI: Cannot parse URI as UTF-8.";
    public const string ErrVersion = "Invalid HTTP Version: Unsupported HTTP version.";

    private static string HeaderFormat(ReadOnlySpan<byte> key) =>
        $"Invalid header. Reason: Header is incorrectly formatted. Key: {System.Text.Encoding.ASCII.GetString(key)}";
    private static string HeaderValue(ReadOnlySpan<byte> key, ReadOnlySpan<byte> rawValue) =>
        $"Invalid header. Reason: Invalid value. Key:{System.Text.Encoding.ASCII.GetString(key)}; Value:{System.Text.Encoding.ASCII.GetString(rawValue)}";
    private const string ErrChunked = "Invalid header. Reason: Unsupported feature. Key: Transfer-Encoding; Value: chunked";

    /// <summary>
    /// Parses the request head at the start of <paramref name="buf"/>. Leading empty lines are skipped (counted in
    /// <see cref="HttpRequestHead.HeadLength"/>). On <see cref="HttpParseStatus.Error"/>, <paramref name="error"/> is one
    /// of the constant messages above.
    /// </summary>
    public static HttpParseStatus TryParse(ReadOnlySpan<byte> buf, int maxHeadBytes, out HttpRequestHead head, out string? error)
    {
        head = default;
        head.ContentLength = -1;
        error = null;

        int skip = 0;
        while (skip + 1 < buf.Length && buf[skip] == '\r' && buf[skip + 1] == '\n' && skip < 16) skip += 2;
        var rest = buf[skip..];

        int end = rest.IndexOf("\r\n\r\n"u8);
        if (end < 0)
        {
            // Refuse early when the request line is already complete and wrong, or the head is too long.
            int firstLine = rest.IndexOf("\r\n"u8);
            if (firstLine >= 0 && !ParseRequestLine(rest[..firstLine], skip, ref head, out error)) return HttpParseStatus.Error;
            if (rest.Length > maxHeadBytes) { error = ErrHeadTooLarge; return HttpParseStatus.Error; }
            if (firstLine < 0 && rest.Length > 0 && !LooksLikeMethodPrefix(rest)) { error = ErrMethod; return HttpParseStatus.Error; }
            return HttpParseStatus.Incomplete;
        }
        if (end + 4 > maxHeadBytes) { error = ErrHeadTooLarge; return HttpParseStatus.Error; }

        int lineEnd = rest.IndexOf("\r\n"u8);
        if (!ParseRequestLine(rest[..lineEnd], skip, ref head, out error)) return HttpParseStatus.Error;

        int pos = lineEnd + 2;
        bool sawClose = false, sawKeepAlive = false;
        while (pos < end + 2)
        {
            int len = rest[pos..].IndexOf("\r\n"u8);
            var line = rest.Slice(pos, len);
            pos += len + 2;
            int colon = line.IndexOf((byte)':');
            if (colon <= 0) { error = HeaderFormat(line); return HttpParseStatus.Error; }
            var name = line[..colon];
            foreach (byte c in name) if (!IsTokenChar(c)) { error = HeaderFormat(name); return HttpParseStatus.Error; }
            var raw = line[(colon + 1)..];
            var value = Trim(raw);
            foreach (byte c in value) if ((c < 0x20 && c != '\t') || c == 0x7f) { error = HeaderValue(name, raw); return HttpParseStatus.Error; }

            if (name.EqualsIgnoreCaseAscii("Content-Length"u8))
            {
                // micro-http reads a u32; a second, different length is refused too (request smuggling).
                if (value.Length is 0 or > 10) { error = HeaderValue(name, raw); return HttpParseStatus.Error; }
                long n = 0;
                foreach (byte c in value)
                {
                    if (c is < (byte)'0' or > (byte)'9') { error = HeaderValue(name, raw); return HttpParseStatus.Error; }
                    n = n * 10 + (c - '0');
                }
                if (n > uint.MaxValue || (head.ContentLength >= 0 && head.ContentLength != n)) { error = HeaderValue(name, raw); return HttpParseStatus.Error; }
                head.ContentLength = n;
            }
            else if (name.EqualsIgnoreCaseAscii("Transfer-Encoding"u8))
            {
                // micro-http accepts "chunked" but never decodes it; the chunks would be read as the next request.
                if (value.EqualsIgnoreCaseAscii("chunked"u8)) { error = ErrChunked; return HttpParseStatus.Error; }
            }
            else if (name.EqualsIgnoreCaseAscii("Connection"u8))
            {
                if (ContainsToken(value, "close"u8)) sawClose = true;
                if (ContainsToken(value, "keep-alive"u8)) sawKeepAlive = true;
            }
            else if (name.EqualsIgnoreCaseAscii("Expect"u8))
            {
                if (value.EqualsIgnoreCaseAscii("100-continue"u8)) head.ExpectContinue = true;
            }
        }
        // micro-http keeps every connection open (HTTP/1.0 too) and answers "keep-alive"; only a client that asks to
        // close gets its connection closed after the answer.
        head.KeepAlive = !sawClose || sawKeepAlive;
        head.HeadLength = skip + end + 4;
        return HttpParseStatus.Complete;
    }

    /// <summary>
    /// micro-http's request line: method up to the first space, URI up to the next, the version is the rest; checked
    /// in that order. A URI that is neither absolute ("http://host/path") nor starts with '/' has an empty path, as
    /// micro-http's Uri::get_abs_path gives.
    /// </summary>
    private static bool ParseRequestLine(ReadOnlySpan<byte> line, int offset, ref HttpRequestHead head, out string? error)
    {
        error = null;
        int sp1 = line.IndexOf((byte)' ');
        if (sp1 < 0) { error = ErrRequestLine; return false; }
        var afterMethod = line[(sp1 + 1)..];
        int sp2 = afterMethod.IndexOf((byte)' ');
        if (sp2 < 0) { error = ErrRequestLine; return false; }
        var method = line[..sp1];
        if (!IsMethod(method)) { error = ErrMethod; return false; }
        var target = afterMethod[..sp2];
        var version = afterMethod[(sp2 + 1)..];
        if (target.Length == 0) { error = ErrUriEmpty; return false; }
        // Printable ASCII only: paths are turned into strings one byte per char (PathCache) and logged.
        foreach (byte c in target) if (c is <= 0x20 or >= 0x7f) { error = ErrUri; return false; }
        if (version.SequenceEqual("HTTP/1.1"u8)) head.VersionMinor = 1;
        else if (version.SequenceEqual("HTTP/1.0"u8)) head.VersionMinor = 0;
        else { error = ErrVersion; return false; }

        int targetStart = sp1 + 1;
        if (target.StartsWith("http://"u8))
        {
            int slash = target[7..].IndexOf((byte)'/');
            targetStart += slash < 0 ? target.Length : 7 + slash;
            target = slash < 0 ? default : target[(7 + slash)..];
        }
        else if (target[0] != '/')
        {
            targetStart += target.Length;
            target = default;
        }

        head.MethodStart = offset;
        head.MethodLength = method.Length;
        head.PathStart = offset + targetStart;
        head.PathLength = target.Length;
        return true;
    }

    /// <summary>The methods micro-http parses; any other is refused at the HTTP layer.</summary>
    private static bool IsMethod(ReadOnlySpan<byte> m) =>
        m.SequenceEqual("GET"u8) || m.SequenceEqual("PUT"u8) || m.SequenceEqual("PATCH"u8) || m.SequenceEqual("DELETE"u8);

    /// <summary>Whether a request line still being received can become one with a method micro-http parses.</summary>
    private static bool LooksLikeMethodPrefix(ReadOnlySpan<byte> s)
    {
        int sp = s.IndexOf((byte)' ');
        var m = sp < 0 ? s : s[..sp];
        if (sp >= 0) return IsMethod(m);
        return "GET"u8.StartsWith(m) || "PUT"u8.StartsWith(m) || "PATCH"u8.StartsWith(m) || "DELETE"u8.StartsWith(m);
    }

    private static bool IsTokenChar(byte c) =>
        c is (>= (byte)'a' and <= (byte)'z') or (>= (byte)'A' and <= (byte)'Z') or (>= (byte)'0' and <= (byte)'9')
          or (byte)'!' or (byte)'#' or (byte)'$' or (byte)'%' or (byte)'&' or (byte)'\'' or (byte)'*' or (byte)'+'
          or (byte)'-' or (byte)'.' or (byte)'^' or (byte)'_' or (byte)'`' or (byte)'|' or (byte)'~';

    private static ReadOnlySpan<byte> Trim(ReadOnlySpan<byte> s)
    {
        int a = 0, b = s.Length;
        while (a < b && s[a] is (byte)' ' or (byte)'\t') a++;
        while (b > a && s[b - 1] is (byte)' ' or (byte)'\t') b--;
        return s[a..b];
    }

    private static bool ContainsToken(ReadOnlySpan<byte> value, ReadOnlySpan<byte> token)
    {
        while (!value.IsEmpty)
        {
            int comma = value.IndexOf((byte)',');
            var part = Trim(comma < 0 ? value : value[..comma]);
            if (part.EqualsIgnoreCaseAscii(token)) return true;
            if (comma < 0) break;
            value = value[(comma + 1)..];
        }
        return false;
    }

    private static bool EqualsIgnoreCaseAscii(this ReadOnlySpan<byte> a, ReadOnlySpan<byte> b) =>
        System.Text.Ascii.EqualsIgnoreCase(a, b);
}
