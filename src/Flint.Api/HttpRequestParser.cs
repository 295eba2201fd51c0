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
    public bool KeepAlive, ExpectContinue, HasTransferEncoding;

    public readonly long BodyLength => ContentLength < 0 ? 0 : ContentLength;
}

/// <summary>
/// A strict HTTP/1.0-1.1 request-head parser (request line + headers, CRLF line ends) over a byte span. Only what
/// the API needs is interpreted: Content-Length, Transfer-Encoding, Connection and Expect.
/// </summary>
public static class HttpRequestParser
{
    public const int DefaultMaxHeadBytes = 8192;

    public const string ErrHeadTooLarge = "Request headers are too large.";
    public const string ErrRequestLine = "Invalid HTTP request line.";
    public const string ErrMethod = "Invalid HTTP method.";
    public const string ErrUri = "Invalid request URI.";
    public const string ErrVersion = "Unsupported HTTP version.";
    public const string ErrHeader = "Invalid HTTP header.";
    public const string ErrContentLength = "Invalid Content-Length header.";

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
        head.KeepAlive = head.VersionMinor == 1;

        int pos = lineEnd + 2;
        bool sawClose = false, sawKeepAlive = false;
        while (pos < end + 2)
        {
            int len = rest[pos..].IndexOf("\r\n"u8);
            var line = rest.Slice(pos, len);
            pos += len + 2;
            int colon = line.IndexOf((byte)':');
            if (colon <= 0) { error = ErrHeader; return HttpParseStatus.Error; }
            var name = line[..colon];
            foreach (byte c in name) if (!IsTokenChar(c)) { error = ErrHeader; return HttpParseStatus.Error; }
            var value = Trim(line[(colon + 1)..]);
            foreach (byte c in value) if ((c < 0x20 && c != '\t') || c == 0x7f) { error = ErrHeader; return HttpParseStatus.Error; }

            if (name.EqualsIgnoreCaseAscii("Content-Length"u8))
            {
                if (value.Length is 0 or > 15) { error = ErrContentLength; return HttpParseStatus.Error; }
                long n = 0;
                foreach (byte c in value)
                {
                    if (c is < (byte)'0' or > (byte)'9') { error = ErrContentLength; return HttpParseStatus.Error; }
                    n = n * 10 + (c - '0');
                }
                if (head.ContentLength >= 0 && head.ContentLength != n) { error = ErrContentLength; return HttpParseStatus.Error; }
                head.ContentLength = n;
            }
            else if (name.EqualsIgnoreCaseAscii("Transfer-Encoding"u8))
            {
                head.HasTransferEncoding = true;
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
        if (sawClose) head.KeepAlive = false;
        else if (sawKeepAlive) head.KeepAlive = true;
        head.HeadLength = skip + end + 4;
        return HttpParseStatus.Complete;
    }

    private static bool ParseRequestLine(ReadOnlySpan<byte> line, int offset, ref HttpRequestHead head, out string? error)
    {
        error = null;
        int sp1 = line.IndexOf((byte)' ');
        if (sp1 <= 0) { error = ErrRequestLine; return false; }
        var method = line[..sp1];
        if (method.Length > 16) { error = ErrMethod; return false; }
        foreach (byte c in method) if (c is < (byte)'A' or > (byte)'Z') { error = ErrMethod; return false; }
        var afterMethod = line[(sp1 + 1)..];
        int sp2 = afterMethod.IndexOf((byte)' ');
        if (sp2 <= 0) { error = ErrRequestLine; return false; }
        var target = afterMethod[..sp2];
        var version = afterMethod[(sp2 + 1)..];
        if (version.SequenceEqual("HTTP/1.1"u8)) head.VersionMinor = 1;
        else if (version.SequenceEqual("HTTP/1.0"u8)) head.VersionMinor = 0;
        else { error = version.IndexOf((byte)' ') >= 0 ? ErrRequestLine : ErrVersion; return false; }

        int targetStart = sp1 + 1;
        // Absolute form (http://host/path) is reduced to its path, as Firecracker's server does.
        if (target.StartsWith("http://"u8))
        {
            int slash = target[7..].IndexOf((byte)'/');
            if (slash < 0) { error = ErrUri; return false; }
            targetStart += 7 + slash;
            target = target[(7 + slash)..];
        }
        if (target.Length == 0 || target[0] != '/') { error = ErrUri; return false; }
        foreach (byte c in target) if (c is <= 0x20 or >= 0x7f) { error = ErrUri; return false; }

        head.MethodStart = offset;
        head.MethodLength = method.Length;
        head.PathStart = offset + targetStart;
        head.PathLength = target.Length;
        return true;
    }

    private static bool LooksLikeMethodPrefix(ReadOnlySpan<byte> s)
    {
        int sp = s.IndexOf((byte)' ');
        var m = sp < 0 ? s : s[..sp];
        if (m.Length > 16 || (sp == 0)) return false;
        foreach (byte c in m) if (c is < (byte)'A' or > (byte)'Z') return false;
        return true;
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
