namespace Flint.SnapshotTool;

/// <summary>"--name value" (or "--name=value") options of one subcommand; anything else is a usage error.</summary>
internal sealed class Options
{
    private readonly Dictionary<string, string> _values = [];

    public static Options Parse(ReadOnlySpan<string> args, string[] required, string[] optional, params (string Short, string Long)[] shorts)
    {
        var o = new Options();
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i], name = a;
            string? value = null;
            int eq = a.IndexOf('=');
            if (a.StartsWith("--", StringComparison.Ordinal) && eq > 0) { name = a[..eq]; value = a[(eq + 1)..]; }
            foreach (var (s, l) in shorts) if (name == s) name = l;
            if (!required.Contains(name) && !optional.Contains(name))
                throw new ToolException($"unexpected argument '{a}'.", ExitCodes.Usage);
            if (value == null)
            {
                if (i + 1 >= args.Length) throw new ToolException($"a value is required for '{name}'.", ExitCodes.Usage);
                value = args[++i];
            }
            if (!o._values.TryAdd(name, value)) throw new ToolException($"'{name}' given more than once.", ExitCodes.Usage);
        }
        foreach (var r in required)
            if (!o._values.ContainsKey(r)) throw new ToolException($"the argument '{r}' is required.", ExitCodes.Usage);
        return o;
    }

    public string? Get(string name) => _values.GetValueOrDefault(name);

    public string Required(string name) => _values[name];
}
