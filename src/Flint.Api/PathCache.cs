namespace Flint.Api;

/// <summary>Turns request-target bytes into strings, reusing the string for a path seen before (bounded).</summary>
public sealed class PathCache
{
    private const int MaxEntries = 128;
    private readonly Dictionary<string, string> _map = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string>.AlternateLookup<ReadOnlySpan<char>> _lookup;
    private char[] _chars = new char[256];

    public PathCache() => _lookup = _map.GetAlternateLookup<ReadOnlySpan<char>>();

    /// <summary><paramref name="ascii"/> holds only printable ASCII (the parser checked it).</summary>
    public string Get(ReadOnlySpan<byte> ascii)
    {
        if (_chars.Length < ascii.Length) _chars = new char[Math.Max(ascii.Length, _chars.Length * 2)];
        var chars = _chars.AsSpan(0, ascii.Length);
        for (int i = 0; i < ascii.Length; i++) chars[i] = (char)ascii[i];
        if (_lookup.TryGetValue(chars, out var s)) return s;
        s = new string(chars);
        if (_map.Count < MaxEntries) _map[s] = s;
        return s;
    }

    /// <summary>Method names: the four micro-http parses are constants; anything else gets a new string.</summary>
    public static string Method(ReadOnlySpan<byte> m)
    {
        if (m.SequenceEqual("GET"u8)) return "GET";
        if (m.SequenceEqual("PUT"u8)) return "PUT";
        if (m.SequenceEqual("PATCH"u8)) return "PATCH";
        if (m.SequenceEqual("DELETE"u8)) return "DELETE";
        return System.Text.Encoding.ASCII.GetString(m);
    }
}
