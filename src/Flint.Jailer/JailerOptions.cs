namespace Flint.Jailer;

/// <summary>An invalid argument or environment problem found before anything is created.</summary>
public sealed class JailerException(string message) : Exception(message);

/// <summary>The jailer's command line, Firecracker's flags and meanings.</summary>
public sealed class JailerOptions
{
    public const string DefaultChrootBase = "/srv/jailer";
    public const ulong DefaultNoFile = 2048;

    public string Id = "";
    public string ExecFile = "";
    public uint Uid, Gid;
    public string ChrootBaseDir = DefaultChrootBase;
    public string? NetNs;
    public bool Daemonize, NewPidNs;
    public List<(string File, string Value)> Cgroups = new();
    public int CgroupVersion = 1;
    public string? ParentCgroup;
    public ulong? FileSizeLimit;
    public ulong? NoFileLimit;
    public List<string> ExtraArgs = new();
    public bool Help, Version;

    public const string Usage =
        "flint-jailer --id <id> --exec-file <exec_file> --uid <uid> --gid <gid>\n" +
        "             [--chroot-base-dir <dir>] [--netns <path>] [--daemonize] [--new-pid-ns]\n" +
        "             [--cgroup <file>=<value>]... [--cgroup-version 1|2] [--parent-cgroup <relative path>]\n" +
        "             [--resource-limit fsize=<bytes>|no-file=<n>]... [-- <arguments for the exec file>]\n" +
        "\n" +
        "Resource limits apply to the exec file only (no-file: 1 or more; default 2048).\n" +
        "Exit status: 0 once the exec file runs (without --daemonize or --new-pid-ns, the exec file's own status);\n" +
        "1 on any error, with the reason on stderr after \"flint-jailer: error:\"; the jail directory is then removed.\n";

    private static readonly HashSet<string> ValueFlags = new()
    {
        "id", "exec-file", "uid", "gid", "chroot-base-dir", "netns", "cgroup", "cgroup-version", "parent-cgroup",
        "resource-limit",
    };
    private static readonly HashSet<string> MultiFlags = new() { "cgroup", "resource-limit" };
    private static readonly HashSet<string> BoolFlags = new() { "daemonize", "new-pid-ns", "help", "version" };

    /// <summary>Parses the command line (syntax only: values are checked by <see cref="JailPlan"/>).</summary>
    public static JailerOptions Parse(string[] args)
    {
        var o = new JailerOptions();
        var seen = new HashSet<string>();
        for (int i = 0; i < args.Length; i++)
        {
            string a = args[i];
            if (a == "--")
            {
                o.ExtraArgs.AddRange(args.Skip(i + 1));
                break;
            }
            if (!a.StartsWith("--", StringComparison.Ordinal) || a.Length == 2)
                throw new JailerException($"Found argument '{a}' which wasn't expected, or isn't valid in this context.");
            string name = a[2..];
            string? inline = null;
            int eq = name.IndexOf('=');
            if (eq >= 0) { inline = name[(eq + 1)..]; name = name[..eq]; }

            if (BoolFlags.Contains(name))
            {
                if (inline != null) throw new JailerException($"Argument '--{name}' does not take a value.");
                if (!seen.Add(name)) throw new JailerException($"Argument '--{name}' was provided more than once.");
                switch (name)
                {
                    case "daemonize": o.Daemonize = true; break;
                    case "new-pid-ns": o.NewPidNs = true; break;
                    case "help": o.Help = true; break;
                    case "version": o.Version = true; break;
                }
                continue;
            }
            if (!ValueFlags.Contains(name))
                throw new JailerException($"Found argument '--{name}' which wasn't expected, or isn't valid in this context.");
            string value;
            if (inline != null) value = inline;
            else if (i + 1 < args.Length && !(args[i + 1].StartsWith("--", StringComparison.Ordinal) && args[i + 1].Length > 2))
                value = args[++i];
            else throw new JailerException($"Argument '--{name}' requires a value.");
            if (!MultiFlags.Contains(name) && !seen.Add(name))
                throw new JailerException($"Argument '--{name}' was provided more than once.");

            switch (name)
            {
                case "id": o.Id = value; break;
                case "exec-file": o.ExecFile = value; break;
                case "uid": o.Uid = ParseId("uid", value); break;
                case "gid": o.Gid = ParseId("gid", value); break;
                case "chroot-base-dir": o.ChrootBaseDir = value; break;
                case "netns": o.NetNs = value; break;
                case "cgroup-version":
                    o.CgroupVersion = value switch
                    {
                        "1" => 1,
                        "2" => 2,
                        _ => throw new JailerException($"Invalid cgroup version: '{value}' (expected 1 or 2)."),
                    };
                    break;
                case "parent-cgroup": o.ParentCgroup = value; break;
                case "cgroup":
                {
                    string[] kv = value.Split('=');
                    if (kv.Length != 2 || kv[0].Length == 0 || kv[1].Length == 0)
                        throw new JailerException($"Invalid format for cgroup: '{value}' (expected <file>=<value>).");
                    o.Cgroups.Add((kv[0], kv[1]));
                    break;
                }
                case "resource-limit":
                {
                    int k = value.IndexOf('=');
                    if (k < 0) throw new JailerException($"Invalid format for resource limit: '{value}' (expected <resource>=<value>).");
                    string res = value[..k], v = value[(k + 1)..];
                    if (!ulong.TryParse(v, System.Globalization.NumberStyles.None, null, out ulong limit))
                        throw new JailerException($"Invalid value for resource limit '{res}': '{v}'.");
                    switch (res)
                    {
                        case "fsize": o.FileSizeLimit = limit; break;
                        case "no-file":
                            // Zero leaves the VMM unable to open anything (not even /dev/kvm): refuse it here, with
                            // Firecracker's ResLimitValue wording, rather than jail a process that cannot start.
                            if (limit == 0)
                                throw new JailerException("Invalid limit value for resource: no-file: 0 (the VMM could not open a single file).");
                            o.NoFileLimit = limit;
                            break;
                        default: throw new JailerException($"Invalid resource limit argument: '{res}' (expected fsize or no-file).");
                    }
                    break;
                }
            }
        }
        if (o.Help || o.Version) return o;
        foreach (string req in new[] { "id", "exec-file", "uid", "gid" })
            if (!seen.Contains(req)) throw new JailerException($"Missing argument: --{req}.");
        return o;
    }

    private static uint ParseId(string what, string value) =>
        uint.TryParse(value, System.Globalization.NumberStyles.None, null, out uint v)
            ? v
            : throw new JailerException($"Invalid {what}: '{value}'.");

    /// <summary>Firecracker's id rule: 1 to 64 ASCII alphanumerics or '-'.</summary>
    public static bool IsValidId(string id) =>
        id.Length is >= 1 and <= 64 && id.All(c => c is (>= 'a' and <= 'z') or (>= 'A' and <= 'Z') or (>= '0' and <= '9') or '-');
}
