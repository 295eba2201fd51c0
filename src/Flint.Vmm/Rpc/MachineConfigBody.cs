namespace Flint.Vmm.Rpc;

/// <summary>The fields of a PUT /machine-config body; null where the body left an optional field out or null.</summary>
internal readonly record struct MachineConfigFields(
    int VcpuCount, long MemSizeMib, bool? Smt, bool? TrackDirtyPages, string? HugePages, string? CpuTemplate);

/// <summary>
/// Reads the usual PUT /machine-config body without allocating (the general <see cref="JsonBody"/> path builds a
/// tree of nodes, key and number strings: about 1.4 KB a request). It takes only a flat object of MachineConfig's
/// fields, each at most once: unescaped ASCII keys and enum strings, unsigned integers with no sign, fraction or
/// exponent, <c>true</c>/<c>false</c>, and <c>null</c> for the optional fields. Anything else, whether an error or
/// valid JSON it does not handle (escapes, an unknown field, an out-of-range number), makes it answer false, and the
/// caller takes the general path, which checks the body in full and words serde's error. So it accepts only bodies
/// the general path accepts, with the same values.
/// </summary>
internal static class MachineConfigBody
{
    private const int VcpuBit = 1, MemBit = 2, SmtBit = 4, DirtyBit = 8, HugeBit = 16, TemplateBit = 32;

    /// <param name="cpuTemplates">The cpu_template variants; a variant read is returned as this array's string.</param>
    /// <param name="hugePages">The huge_pages variants, likewise.</param>
    public static bool TryRead(ReadOnlySpan<char> s, string[] cpuTemplates, string[] hugePages, out MachineConfigFields fields)
    {
        fields = default;
        int seen = 0;
        ulong vcpu = 0, mem = 0;
        bool? smt = null, dirty = null;
        string? huge = null, template = null;

        int i = SkipWhitespace(s, 0);
        if (i >= s.Length || s[i] != '{') return false;
        i = SkipWhitespace(s, i + 1);
        while (true)
        {
            if (!TryPlainString(s, ref i, out var key)) return false; // also "{}" and a trailing comma
            i = SkipWhitespace(s, i);
            if (i >= s.Length || s[i] != ':') return false;
            i = SkipWhitespace(s, i + 1);
            int bit;
            bool ok;
            switch (key)
            {
                case "vcpu_count": bit = VcpuBit; ok = TryUnsigned(s, ref i, byte.MaxValue, out vcpu); break;
                case "mem_size_mib": bit = MemBit; ok = TryUnsigned(s, ref i, long.MaxValue, out mem); break;
                case "smt": bit = SmtBit; ok = TryOptionalBool(s, ref i, out smt); break;
                case "track_dirty_pages": bit = DirtyBit; ok = TryOptionalBool(s, ref i, out dirty); break;
                case "huge_pages": bit = HugeBit; ok = TryOptionalVariant(s, ref i, hugePages, out huge); break;
                case "cpu_template": bit = TemplateBit; ok = TryOptionalVariant(s, ref i, cpuTemplates, out template); break;
                default: return false;
            }
            if (!ok || (seen & bit) != 0) return false;
            seen |= bit;
            i = SkipWhitespace(s, i);
            if (i >= s.Length) return false;
            if (s[i] == '}') break;
            if (s[i] != ',') return false;
            i = SkipWhitespace(s, i + 1);
        }
        if (SkipWhitespace(s, i + 1) != s.Length) return false;
        if ((seen & (VcpuBit | MemBit)) != (VcpuBit | MemBit)) return false;
        fields = new MachineConfigFields((int)vcpu, (long)mem, smt, dirty, huge, template);
        return true;
    }

    /// <summary>JSON's whitespace: space, tab, line feed, carriage return.</summary>
    private static int SkipWhitespace(ReadOnlySpan<char> s, int i)
    {
        while (i < s.Length && s[i] is ' ' or '\t' or '\n' or '\r') i++;
        return i;
    }

    /// <summary>A string with no escape and no control character; <paramref name="value"/> is its content.</summary>
    private static bool TryPlainString(ReadOnlySpan<char> s, ref int i, out ReadOnlySpan<char> value)
    {
        value = default;
        if (i >= s.Length || s[i] != '"') return false;
        int start = i + 1;
        int end = start;
        while (end < s.Length && s[end] != '"')
        {
            if (s[end] == '\\' || s[end] < ' ') return false;
            end++;
        }
        if (end >= s.Length) return false;
        value = s[start..end];
        i = end + 1;
        return true;
    }

    /// <summary>Digits only, no leading zero (JSON's rule), at most <paramref name="max"/>.</summary>
    private static bool TryUnsigned(ReadOnlySpan<char> s, ref int i, ulong max, out ulong value)
    {
        value = 0;
        int start = i;
        while (i < s.Length && char.IsAsciiDigit(s[i]))
        {
            ulong digit = (ulong)(s[i] - '0');
            if (value > (max - digit) / 10) return false;
            value = value * 10 + digit;
            i++;
        }
        int length = i - start;
        return length > 0 && !(length > 1 && s[start] == '0');
    }

    private static bool TryOptionalBool(ReadOnlySpan<char> s, ref int i, out bool? value)
    {
        value = null;
        if (TryLiteral(s, ref i, "true")) { value = true; return true; }
        if (TryLiteral(s, ref i, "false")) { value = false; return true; }
        return TryLiteral(s, ref i, "null");
    }

    /// <summary>null, or a string that is exactly one of <paramref name="variants"/> (serde matches variants exactly).</summary>
    private static bool TryOptionalVariant(ReadOnlySpan<char> s, ref int i, string[] variants, out string? value)
    {
        value = null;
        if (TryLiteral(s, ref i, "null")) return true;
        if (!TryPlainString(s, ref i, out var text)) return false;
        foreach (var v in variants)
            if (text.SequenceEqual(v)) { value = v; return true; }
        return false;
    }

    private static bool TryLiteral(ReadOnlySpan<char> s, ref int i, string literal)
    {
        if (!s[i..].StartsWith(literal, StringComparison.Ordinal)) return false;
        i += literal.Length;
        return true;
    }
}
