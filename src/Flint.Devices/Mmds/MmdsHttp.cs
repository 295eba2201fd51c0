using System.Globalization;
using System.Text;

namespace Flint.Devices.Mmds;

/// <summary>
/// The HTTP/1.1 side of MMDS: finds one request in a connection's byte stream, answers it from the store.
/// V1: GET anything (a token, valid or not, is ignored). V2: GET needs a valid X-metadata-token, else 401.
/// Both: PUT /latest/api/token with X-metadata-token-ttl-seconds (1-21600) issues a token; any other method is 405.
/// Allocates per request (strings, the response): this is the metadata path, not the frame path.
/// </summary>
public sealed class MmdsHttp(MmdsStore store, MmdsVersion version, MmdsTokenAuthority tokens)
{
    public const int MaxRequestBytes = 4096;

    public MmdsStore Store { get; } = store;
    public MmdsVersion Version { get; } = version;

    /// <summary>Where rx_no_token / rx_invalid_token are counted (the network stack passes its own).</summary>
    public MmdsMetrics Metrics { get; init; } = new();

    /// <summary>
    /// Looks for a whole request at the start of <paramref name="buf"/>. Returns the bytes it takes (0: not whole yet)
    /// and the response to send; <paramref name="close"/> when the connection should close after it.
    /// </summary>
    public int TryHandle(ReadOnlySpan<byte> buf, out byte[]? response, out bool close)
    {
        response = null;
        close = false;
        int end = buf.IndexOf("\r\n\r\n"u8);
        if (end < 0) return 0;
        string head = Encoding.ASCII.GetString(buf[..end]);
        var lines = head.Split("\r\n");
        var parts = lines[0].Split(' ');
        string? ttl = null, token = null, accept = null, conn = null;
        bool forwarded = false;
        long contentLength = 0;
        bool bad = parts.Length != 3 || !parts[2].StartsWith("HTTP/1.", StringComparison.Ordinal) || parts[1].Length == 0;
        for (int i = 1; i < lines.Length && !bad; i++)
        {
            int c = lines[i].IndexOf(':');
            if (c <= 0) { bad = true; break; }
            string name = lines[i][..c].Trim(), value = lines[i][(c + 1)..].Trim();
            switch (name.ToLowerInvariant())
            {
                case "x-metadata-token-ttl-seconds" or "x-aws-ec2-metadata-token-ttl-seconds": ttl = value; break;
                case "x-metadata-token" or "x-aws-ec2-metadata-token": token = value; break;
                case "accept": accept = value; break;
                case "connection": conn = value; break;
                case "x-forwarded-for": forwarded = true; break;
                case "content-length":
                    if (!long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out contentLength)) bad = true;
                    break;
                case "transfer-encoding": bad = true; break;
            }
        }
        int total = end + 4;
        if (!bad && contentLength > MaxRequestBytes) { bad = true; close = true; }
        if (!bad)
        {
            if (buf.Length - total < contentLength) return 0; // body still on its way
            total += (int)contentLength;
        }
        if (parts.Length == 3 && parts[2] == "HTTP/1.0") close = true;
        if (conn != null && conn.Equals("close", StringComparison.OrdinalIgnoreCase)) close = true;
        if (bad)
        {
            close = true;
            response = Build(400, "Bad Request", "text/plain", "Invalid request.", close);
            return buf.Length < total ? buf.Length : total;
        }
        response = Respond(parts[0], parts[1], ttl, token, accept, forwarded, close);
        return total;
    }

    private byte[] Respond(string method, string uri, string? ttl, string? token, string? accept, bool forwarded, bool close)
    {
        string path = SanitizePath(uri);
        switch (method)
        {
            case "PUT":
                if (forwarded)
                    return Build(400, "Bad Request", "text/plain", "Invalid header. Reason: Unsupported header name. Key: X-Forwarded-For", close);
                if (path != "/latest/api/token")
                    return Build(404, "Not Found", "text/plain", "Resource not found: " + path + ".", close);
                if (ttl == null)
                    return Build(400, "Bad Request", "text/plain",
                        "Token time to live value not found. Use X-metadata-token-ttl-seconds header to specify the token's lifetime.", close);
                if (!long.TryParse(ttl, NumberStyles.None, CultureInfo.InvariantCulture, out long secs) || !MmdsTokenAuthority.IsValidTtl(secs))
                    return Build(400, "Bad Request", "text/plain",
                        $"Invalid time to live value provided for token: {ttl}. Please provide a value between {MmdsTokenAuthority.MinTtlSeconds} and {MmdsTokenAuthority.MaxTtlSeconds}.", close);
                return Build(200, "OK", "text/plain", tokens.Generate((int)secs), close);
            case "GET":
                // Firecracker (mmds/mod.rs respond_to_get_request_v1/_v2) counts a GET without a token (rx_no_token) or
                // with one that is not valid (rx_invalid_token) under both versions; only V2 refuses it.
                bool valid = token != null && tokens.IsValid(token);
                if (token == null) Interlocked.Increment(ref Metrics.RxNoToken);
                else if (!valid) Interlocked.Increment(ref Metrics.RxInvalidToken);
                if (Version == MmdsVersion.V2 && !valid)
                    return Build(401, "Unauthorized", "text/plain",
                        token == null ? "No MMDS token provided. Use `X-metadata-token` header to specify the session token."
                                      : "MMDS token not valid.", close);
                bool json = accept != null && accept.Contains("application/json", StringComparison.OrdinalIgnoreCase);
                var r = Store.Lookup(path, json);
                string reason = r.Status switch { 200 => "OK", 404 => "Not Found", _ => "Not Implemented" };
                return Build(r.Status, reason, r.IsJson ? "application/json" : "text/plain", r.Body, close);
            default:
                return Build(405, "Method Not Allowed", "text/plain", "Not allowed HTTP method.", close, allow: true);
        }
    }

    /// <summary>Drops query and fragment, collapses repeated slashes, drops a trailing slash ("/" stays).</summary>
    public static string SanitizePath(string uri)
    {
        int q = uri.IndexOfAny(['?', '#']);
        if (q >= 0) uri = uri[..q];
        if (uri.StartsWith("http://", StringComparison.OrdinalIgnoreCase))
        {
            int s = uri.IndexOf('/', 7);
            uri = s < 0 ? "/" : uri[s..];
        }
        var sb = new StringBuilder(uri.Length + 1);
        sb.Append('/');
        foreach (var seg in uri.Split('/', StringSplitOptions.RemoveEmptyEntries))
        {
            if (sb.Length > 1) sb.Append('/');
            sb.Append(seg);
        }
        return sb.ToString();
    }

    private static byte[] Build(int status, string reason, string contentType, string body, bool close, bool allow = false)
    {
        int bodyLen = Encoding.UTF8.GetByteCount(body);
        string head = $"HTTP/1.1 {status} {reason}\r\nServer: Firecracker API\r\nConnection: {(close ? "close" : "keep-alive")}\r\n"
            + (allow ? "Allow: GET, PUT\r\n" : "")
            + $"Content-Type: {contentType}\r\nContent-Length: {bodyLen}\r\n\r\n";
        var bytes = new byte[Encoding.ASCII.GetByteCount(head) + bodyLen];
        int n = Encoding.ASCII.GetBytes(head, bytes);
        Encoding.UTF8.GetBytes(body, bytes.AsSpan(n));
        return bytes;
    }
}
