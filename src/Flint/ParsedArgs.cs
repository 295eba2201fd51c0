namespace Flint;

/// <summary>The outcome of parsing: the flags given (name without dashes → value, null for a switch), or the error.</summary>
public sealed class ParsedArgs
{
    private readonly Dictionary<string, string?> _values;

    private ParsedArgs(Dictionary<string, string?> values, ArgParseError? error, bool help, bool version)
    {
        _values = values;
        Error = error;
        HelpRequested = help;
        VersionRequested = version;
    }

    public ArgParseError? Error { get; }

    /// <summary>`--help` or `-h` was given (before any `--`): nothing else was parsed.</summary>
    public bool HelpRequested { get; }

    /// <summary>`--version` was given (before any `--`): nothing else was parsed.</summary>
    public bool VersionRequested { get; }

    internal static ParsedArgs Fail(ArgParseError e) => new([], e, false, false);
    internal static ParsedArgs Help() => new([], null, true, false);
    internal static ParsedArgs Version() => new([], null, false, true);
    internal static ParsedArgs Of(Dictionary<string, string?> values) => new(values, null, false, false);

    public bool Has(Flag f) => _values.ContainsKey(f.Name);

    /// <summary>The flag's value, its default when absent, or null.</summary>
    public string? Get(Flag f) => _values.TryGetValue(f.Name, out var v) ? v : f.Default;
}
