using System.Text;
using Flint.Api;

namespace Flint.Fuzz.Targets;

/// <summary>
/// The API socket's request-head parser. It reports bad input through its return value, so every exception is a
/// crash; on Complete the offsets it hands back must lie inside the buffer (the server slices with them).
/// </summary>
public sealed class HttpParserTarget : IFuzzTarget
{
    public string Name => "http";
    public string Description => "Flint.Api.HttpRequestParser.TryParse over the raw bytes (max head 8192); no exception is allowed, Complete's offsets must be in range";

    public bool IsAvailable(out string? reason) { reason = null; return true; }

    public void Run(ReadOnlySpan<byte> input)
    {
        var status = HttpRequestParser.TryParse(input, HttpRequestParser.DefaultMaxHeadBytes, out var head, out string? error);
        switch (status)
        {
            case HttpParseStatus.Error when error == null:
                throw new FuzzInvariantException("Error without a message");
            case HttpParseStatus.Complete:
                if (head.HeadLength <= 0 || head.HeadLength > input.Length
                    || head.MethodStart < 0 || head.MethodStart + head.MethodLength > head.HeadLength
                    || head.PathStart < 0 || head.PathLength < 0 || head.PathStart + head.PathLength > head.HeadLength
                    // an empty path is micro-http's for a target that is not "/..."; a non-empty one starts with '/'
                    || (head.PathLength > 0 && input[head.PathStart] != '/')
                    || head.ContentLength < -1)
                    throw new FuzzInvariantException($"Complete with offsets outside the head: {head.MethodStart}+{head.MethodLength} {head.PathStart}+{head.PathLength} head {head.HeadLength} of {input.Length}");
                _ = Encoding.ASCII.GetString(input.Slice(head.PathStart, head.PathLength));
                break;
        }
    }

    public IEnumerable<(string, byte[])> Seeds()
    {
        yield return ("get-root", "GET / HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n"u8.ToArray());
        yield return ("put-body", "PUT /machine-config HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"vcpu_count\":2}"u8.ToArray());
        yield return ("keepalive-10", "\r\nPATCH http://localhost/vm HTTP/1.0\r\nConnection: keep-alive, Upgrade\r\nExpect: 100-continue\r\n\r\n"u8.ToArray());
        yield return ("chunked", "PUT /actions HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"u8.ToArray());
        yield return ("partial", "GET /vers"u8.ToArray());
    }
}
