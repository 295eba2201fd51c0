namespace Flint.Vmm.Rpc;

/// <summary>
/// A JSON syntax check that reports the first error as serde_json does ("expected value at line 1 column 1",
/// "trailing comma at line 3 column 1", "EOF while parsing an object at line 2 column 0"). Firecracker answers a
/// malformed body or config file with serde_json's text, which clients and its tests match; System.Text.Json's own
/// messages are .NET text (and under NativeAOT bare resource keys such as <c>ExpectedStartOfValueNotFound</c>), so
/// they must never reach a user. Run before the tree is built: when this passes, Utf8JsonReader accepts the text too.
/// </summary>
internal static class SerdeJsonSyntax
{
    /// <summary>serde_json's default recursion limit: the 128th nested container is refused.</summary>
    public const int MaxDepth = 127;

    /// <summary>The first syntax error as "what at line L column C", or null when the text is one valid JSON value.</summary>
    public static string? FirstError(ReadOnlySpan<byte> b)
    {
        int i = 0;
        string? err = Value(b, ref i, 0);
        if (err != null) return err;
        SkipWs(b, ref i);
        return i < b.Length ? At(b, "trailing characters", i + 1) : null;
    }

    /// <summary>serde_json's position after <paramref name="consumed"/> bytes: the line, and the bytes since its start.</summary>
    public static string At(ReadOnlySpan<byte> b, string what, int consumed)
    {
        consumed = Math.Clamp(consumed, 0, b.Length);
        int line = 1, lineStart = 0;
        for (int k = 0; k < consumed; k++) if (b[k] == '\n') { line++; lineStart = k + 1; }
        return $"{what} at line {line} column {consumed - lineStart}";
    }

    private static void SkipWs(ReadOnlySpan<byte> b, ref int i)
    {
        while (i < b.Length && b[i] is (byte)' ' or (byte)'\n' or (byte)'\t' or (byte)'\r') i++;
    }

    // Each parser returns null on success (i just past the value) or the error text. A "peek" error counts the
    // offending byte as read (serde's peek_position); an EOF error stops at the end.
    private static string? Value(ReadOnlySpan<byte> b, ref int i, int depth)
    {
        SkipWs(b, ref i);
        if (i >= b.Length) return At(b, "EOF while parsing a value", b.Length);
        switch (b[i])
        {
            case (byte)'n': return Ident(b, ref i, "null"u8);
            case (byte)'t': return Ident(b, ref i, "true"u8);
            case (byte)'f': return Ident(b, ref i, "false"u8);
            case (byte)'"': return String(b, ref i);
            case (byte)'[': return depth + 1 > MaxDepth ? At(b, "recursion limit exceeded", i + 1) : List(b, ref i, depth + 1);
            case (byte)'{': return depth + 1 > MaxDepth ? At(b, "recursion limit exceeded", i + 1) : Object(b, ref i, depth + 1);
            case (byte)'-' or (>= (byte)'0' and <= (byte)'9'): return Number(b, ref i);
            default: return At(b, "expected value", i + 1);
        }
    }

    private static string? Ident(ReadOnlySpan<byte> b, ref int i, ReadOnlySpan<byte> word)
    {
        for (int k = 0; k < word.Length; k++, i++)
        {
            if (i >= b.Length) return At(b, "EOF while parsing a value", b.Length);
            if (b[i] != word[k]) return At(b, "expected ident", i + 1);
        }
        return null;
    }

    private static string? Number(ReadOnlySpan<byte> b, ref int i)
    {
        if (b[i] == '-') i++;
        if (i >= b.Length) return At(b, "EOF while parsing a value", b.Length);
        if (!IsDigit(b[i])) return At(b, "invalid number", i + 1);
        if (b[i] == '0')
        {
            i++;
            if (i < b.Length && IsDigit(b[i])) return At(b, "invalid number", i + 1);
        }
        else while (i < b.Length && IsDigit(b[i])) i++;
        if (i < b.Length && b[i] == '.')
        {
            i++;
            if (i >= b.Length) return At(b, "EOF while parsing a value", b.Length);
            if (!IsDigit(b[i])) return At(b, "invalid number", i + 1);
            while (i < b.Length && IsDigit(b[i])) i++;
        }
        if (i < b.Length && b[i] is (byte)'e' or (byte)'E')
        {
            i++;
            if (i < b.Length && b[i] is (byte)'+' or (byte)'-') i++;
            if (i >= b.Length) return At(b, "EOF while parsing a value", b.Length);
            if (!IsDigit(b[i])) return At(b, "invalid number", i + 1);
            while (i < b.Length && IsDigit(b[i])) i++;
        }
        return null;
    }

    private static string? String(ReadOnlySpan<byte> b, ref int i)
    {
        i++; // the opening quote
        while (true)
        {
            if (i >= b.Length) return At(b, "EOF while parsing a string", b.Length);
            byte c = b[i++];
            if (c == '"') return null;
            if (c < 0x20) return At(b, "control character (\\u0000-\\u001F) found while parsing a string", i);
            if (c != '\\') continue;
            if (i >= b.Length) return At(b, "EOF while parsing a string", b.Length);
            c = b[i++];
            switch (c)
            {
                case (byte)'"' or (byte)'\\' or (byte)'/' or (byte)'b' or (byte)'f' or (byte)'n' or (byte)'r' or (byte)'t': break;
                case (byte)'u':
                {
                    if (Hex4(b, ref i, out int unit) is { } e) return e;
                    if (unit is >= 0xDC00 and <= 0xDFFF) return At(b, "lone leading surrogate in hex escape", i);
                    if (unit is >= 0xD800 and <= 0xDBFF)
                    {
                        if (i + 1 >= b.Length) return At(b, "EOF while parsing a string", b.Length);
                        if (b[i] != '\\' || b[i + 1] != 'u') return At(b, "unexpected end of hex escape", i + 1);
                        i += 2;
                        if (Hex4(b, ref i, out int low) is { } e2) return e2;
                        if (low is < 0xDC00 or > 0xDFFF) return At(b, "lone leading surrogate in hex escape", i);
                    }
                    break;
                }
                default: return At(b, "invalid escape", i);
            }
        }
    }

    private static string? Hex4(ReadOnlySpan<byte> b, ref int i, out int value)
    {
        value = 0;
        for (int k = 0; k < 4; k++)
        {
            if (i >= b.Length) return At(b, "EOF while parsing a string", b.Length);
            int d = HexValue(b[i++]);
            if (d < 0) return At(b, "invalid escape", i);
            value = value * 16 + d;
        }
        return null;
    }

    private static string? List(ReadOnlySpan<byte> b, ref int i, int depth)
    {
        i++; // '['
        bool first = true;
        while (true)
        {
            SkipWs(b, ref i);
            if (i >= b.Length) return At(b, "EOF while parsing a list", b.Length);
            if (b[i] == ']') { i++; return null; }
            if (!first)
            {
                if (b[i] != ',') return At(b, "expected `,` or `]`", i + 1);
                i++;
                SkipWs(b, ref i);
                if (i >= b.Length) return At(b, "EOF while parsing a value", b.Length);
                if (b[i] == ']') return At(b, "trailing comma", i + 1);
            }
            first = false;
            if (Value(b, ref i, depth) is { } e) return e;
        }
    }

    private static string? Object(ReadOnlySpan<byte> b, ref int i, int depth)
    {
        i++; // '{'
        bool first = true;
        while (true)
        {
            SkipWs(b, ref i);
            if (i >= b.Length) return At(b, "EOF while parsing an object", b.Length);
            if (b[i] == '}') { i++; return null; }
            if (!first)
            {
                if (b[i] != ',') return At(b, "expected `,` or `}`", i + 1);
                i++;
                SkipWs(b, ref i);
                if (i >= b.Length) return At(b, "EOF while parsing a value", b.Length);
                if (b[i] == '}') return At(b, "trailing comma", i + 1);
            }
            first = false;
            if (b[i] != '"') return At(b, "key must be a string", i + 1);
            if (String(b, ref i) is { } e) return e;
            SkipWs(b, ref i);
            if (i >= b.Length) return At(b, "EOF while parsing an object", b.Length);
            if (b[i] != ':') return At(b, "expected `:`", i + 1);
            i++;
            if (Value(b, ref i, depth) is { } e2) return e2;
        }
    }

    private static bool IsDigit(byte c) => c is >= (byte)'0' and <= (byte)'9';

    private static int HexValue(byte c) => c switch
    {
        >= (byte)'0' and <= (byte)'9' => c - '0',
        >= (byte)'a' and <= (byte)'f' => c - 'a' + 10,
        >= (byte)'A' and <= (byte)'F' => c - 'A' + 10,
        _ => -1,
    };
}
