namespace Flint;

/// <summary>A command-line flag: `--name` alone (a switch) or `--name VALUE` / `--name=VALUE`.</summary>
public sealed record Flag(string Name, bool TakesValue, string Description, string? Default = null);

/// <summary>
/// A small hand-written parser for flint's flat flag list. System.CommandLine cost about 5 ms of CPU at every start
/// (measured with perf stat on the NativeAOT binary), against Firecracker's 8 ms start-up budget; this costs
/// microseconds. Errors carry the text flint prints before exiting 153.
/// </summary>
public sealed class ArgParser(IReadOnlyList<Flag> flags)
{
    public IReadOnlyList<Flag> Flags { get; } = flags;

    public ParsedArgs Parse(string[] args)
    {
        var values = new Dictionary<string, string?>();
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            if (!a.StartsWith("--", StringComparison.Ordinal) || a.Length == 2)
                return ParsedArgs.Fail($"Found argument '{a}' which wasn't expected, or isn't valid in this context.");
            string name = a;
            string? inline = null;
            int eq = a.IndexOf('=');
            if (eq > 0) { name = a[..eq]; inline = a[(eq + 1)..]; }
            var flag = FindFlag(name);
            if (flag == null) return ParsedArgs.Fail($"Found argument '{name}' which wasn't expected, or isn't valid in this context.");
            if (values.ContainsKey(flag.Name)) return ParsedArgs.Fail($"The argument '{flag.Name}' was provided more than once.");
            if (!flag.TakesValue)
            {
                if (inline != null) return ParsedArgs.Fail($"The argument '{flag.Name}' takes no value.");
                values[flag.Name] = null;
                continue;
            }
            if (inline == null)
            {
                if (i + 1 >= args.Length) return ParsedArgs.Fail($"The argument '{flag.Name}' requires a value but none was supplied.");
                inline = args[++i];
            }
            values[flag.Name] = inline;
        }
        return new ParsedArgs(values, null);
    }

    private Flag? FindFlag(string name)
    {
        foreach (var f in Flags) if (f.Name == name) return f;
        return null;
    }

    public string Help(string title)
    {
        var sb = new System.Text.StringBuilder(title).Append("\n\nOptions:\n");
        foreach (var f in Flags)
            sb.Append("  ").Append((f.Name + (f.TakesValue ? " <value>" : "")).PadRight(40)).Append(f.Description)
              .Append(f.Default != null ? $" [default: {f.Default}]" : "").Append('\n');
        return sb.ToString();
    }
}

/// <summary>The flags given, or the first error.</summary>
public sealed class ParsedArgs(Dictionary<string, string?> values, string? error)
{
    public string? Error { get; } = error;

    public static ParsedArgs Fail(string error) => new([], error);

    public bool Has(Flag f) => values.ContainsKey(f.Name);

    /// <summary>The flag's value, its default when absent, or null.</summary>
    public string? Get(Flag f) => values.TryGetValue(f.Name, out var v) ? v : f.Default;

    /// <summary>Parses a numeric flag; false (with a message) when present but not a number.</summary>
    public bool TryGetLong(Flag f, out long? value, out string error)
    {
        error = "";
        value = null;
        var s = Get(f);
        if (s == null) return true;
        if (long.TryParse(s, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long v)) { value = v; return true; }
        error = $"Invalid value '{s}' for '{f.Name}': expected a non-negative integer.";
        return false;
    }
}
