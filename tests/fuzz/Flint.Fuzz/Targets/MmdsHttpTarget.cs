using System.Text;
using Flint.Devices.Mmds;

namespace Flint.Fuzz.Targets;

/// <summary>
/// MMDS's HTTP layer as one connection's byte stream: requests are taken off the front for as long as TryHandle
/// finds whole ones. Byte 0 picks V1 or V2; the text "@TOKEN@" is replaced by a token the authority issued, so V2's
/// authorised GET paths are reachable. TryHandle is documented never to throw on guest input: any exception is a crash.
/// </summary>
public sealed class MmdsHttpTarget : IFuzzTarget
{
    private readonly MmdsStore _store = MmdsSeedData.Store();
    private readonly MmdsTokenAuthority _tokens = new();
    private readonly MmdsHttp _v1, _v2;
    private readonly byte[] _token;

    public MmdsHttpTarget()
    {
        _v1 = new MmdsHttp(_store, MmdsVersion.V1, _tokens);
        _v2 = new MmdsHttp(_store, MmdsVersion.V2, _tokens);
        _token = Encoding.ASCII.GetBytes(_tokens.Generate(MmdsTokenAuthority.MaxTtlSeconds));
    }

    public string Name => "mmds-http";
    public string Description => "Flint.Devices.Mmds.MmdsHttp.TryHandle over a stream of requests (byte 0: V1/V2; \"@TOKEN@\" becomes a valid token); no exception is allowed";

    public bool IsAvailable(out string? reason) { reason = null; return true; }

    public void Run(ReadOnlySpan<byte> input)
    {
        if (input.IsEmpty) return;
        var http = (input[0] & 1) == 0 ? _v1 : _v2;
        var stream = SubstituteToken(input[1..]);
        ReadOnlySpan<byte> rest = stream;
        for (int guard = 0; !rest.IsEmpty; guard++)
        {
            if (guard > stream.Length) throw new FuzzInvariantException("TryHandle kept consuming nothing while claiming progress");
            int used = http.TryHandle(rest, out var response, out bool close);
            if (used < 0 || used > rest.Length) throw new FuzzInvariantException($"TryHandle consumed {used} of {rest.Length}");
            if (used == 0) break;
            if (response == null) throw new FuzzInvariantException("a consumed request without a response");
            if (close) break;
            rest = rest[used..];
        }
    }

    private byte[] SubstituteToken(ReadOnlySpan<byte> s)
    {
        var marker = "@TOKEN@"u8;
        var result = new List<byte>(s.Length + 64);
        while (true)
        {
            int i = s.IndexOf(marker);
            if (i < 0) { result.AddRange(s); return result.ToArray(); }
            result.AddRange(s[..i]);
            result.AddRange(_token);
            s = s[(i + marker.Length)..];
        }
    }

    public IEnumerable<(string, byte[])> Seeds()
    {
        static byte[] V(int v, string s) => [(byte)v, .. Encoding.ASCII.GetBytes(s)];
        yield return ("v1-get", V(0, "GET /latest/meta-data/ HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n"));
        yield return ("v1-get-json", V(0, "GET /latest?x=1 HTTP/1.1\r\nAccept: application/json\r\n\r\nGET //latest//meta-data/ami-id HTTP/1.1\r\n\r\n"));
        yield return ("v2-token", V(1, "PUT /latest/api/token HTTP/1.1\r\nX-metadata-token-ttl-seconds: 60\r\nContent-Length: 0\r\n\r\n"));
        yield return ("v2-get", V(1, "GET /latest/meta-data/tags HTTP/1.1\r\nX-metadata-token: @TOKEN@\r\nConnection: close\r\n\r\n"));
        yield return ("v2-bad", V(1, "POST http://x/ HTTP/1.0\r\nX-Forwarded-For: 1\r\nContent-Length: 3\r\n\r\nabc"));
    }
}
