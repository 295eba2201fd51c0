namespace Flint.SnapshotTool;

/// <summary>
/// flint-snapshot: Flint's snapshot-editor. Firecracker's spellings work as they are
/// (<c>edit-memory rebase --memory-path BASE --diff-path DIFF</c>, <c>info-vmstate version --vmstate-path FILE</c>),
/// plus two short ones (<c>info FILE</c>, <c>merge --base BASE --diff DIFF [--page-size N]</c>). A failure prints
/// one line on stderr, no .NET text; exit 0 ok, 1 failed, 2 bad arguments.
/// </summary>
public static class Program
{
    public const string Usage =
        "Usage:\n" +
        "  flint-snapshot info <STATE_FILE>\n" +
        "  flint-snapshot info-vmstate version --vmstate-path <STATE_FILE>\n" +
        "  flint-snapshot info-vmstate vm-state --vmstate-path <STATE_FILE>\n" +
        "  flint-snapshot merge --base <MEMORY_FILE> --diff <DIFF_FILE> [--page-size <BYTES>]\n" +
        "  flint-snapshot edit-memory rebase --memory-path <MEMORY_FILE> --diff-path <DIFF_FILE>\n";

    public static int Main(string[] args)
    {
        try { return Run(args, Console.Out); }
        catch (ToolException e)
        {
            Console.Error.WriteLine($"Error: {e.Message}");
            if (e.ExitCode == ExitCodes.Usage) Console.Error.Write("\n" + Usage);
            return e.ExitCode;
        }
        catch (Exception)
        {
            // Never .NET's text; one line that says what was being done.
            Console.Error.WriteLine("Error: internal failure of flint-snapshot.");
            return ExitCodes.Failure;
        }
    }

    internal static int Run(string[] args, TextWriter stdout)
    {
        if (args.Length == 0) throw new ToolException("no command given.", ExitCodes.Usage);
        switch (args[0])
        {
            case "-h" or "--help" or "help":
                stdout.Write(Usage);
                return ExitCodes.Ok;
            case "info":
                if (args.Length != 2 || args[1].StartsWith('-')) throw new ToolException("info takes one state file.", ExitCodes.Usage);
                stdout.Write(StateInfo.Describe(args[1]));
                return ExitCodes.Ok;
            case "info-vmstate":
            {
                if (args.Length < 2) throw new ToolException("info-vmstate needs a subcommand (version, vm-state).", ExitCodes.Usage);
                var o = Options.Parse(args.AsSpan(2), ["--vmstate-path"], []);
                string path = o.Required("--vmstate-path");
                switch (args[1])
                {
                    case "version": stdout.Write(StateInfo.Version(path) + "\n"); return ExitCodes.Ok;
                    case "vm-state": stdout.Write(StateInfo.Describe(path)); return ExitCodes.Ok;
                    default: throw new ToolException($"unknown info-vmstate subcommand '{args[1]}'.", ExitCodes.Usage);
                }
            }
            case "merge":
            {
                var o = Options.Parse(args.AsSpan(1), ["--base", "--diff"], ["--page-size"]);
                uint page = 4096;
                if (o.Get("--page-size") is { } ps && (!uint.TryParse(ps, out page)))
                    throw new ToolException($"invalid value '{ps}' for --page-size.", ExitCodes.Usage);
                Merge(o.Required("--base"), o.Required("--diff"), page, stdout);
                return ExitCodes.Ok;
            }
            case "edit-memory":
            {
                if (args.Length < 2 || args[1] != "rebase")
                    throw new ToolException("edit-memory needs the subcommand rebase.", ExitCodes.Usage);
                var o = Options.Parse(args.AsSpan(2), ["--memory-path", "--diff-path"], [], ("-m", "--memory-path"), ("-d", "--diff-path"));
                Merge(o.Required("--memory-path"), o.Required("--diff-path"), 4096, null);
                return ExitCodes.Ok;
            }
            default:
                throw new ToolException($"unknown command '{args[0]}'.", ExitCodes.Usage);
        }
    }

    private static void Merge(string basePath, string diffPath, uint page, TextWriter? stdout)
    {
        long copied = MemoryRebase.Rebase(basePath, diffPath, page);
        stdout?.Write($"merged {copied} bytes ({copied / page} pages) of {diffPath} onto {basePath}\n");
    }
}
