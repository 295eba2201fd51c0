using Flint.Vmm;
using Flint.Vmm.Config;
using Flint.Vmm.Logging;

namespace Flint;

/// <summary>
/// The `flint` command line: Firecracker's flags, names and exit codes (153 for argument errors, 152 for bad
/// configuration), so scripts written for firecracker run unchanged.
/// </summary>
public static class Cli
{
    public const string Version = "0.1.0";

    private static readonly Flag ApiSock = new("--api-sock", true, "Path to the API Unix socket.", "/run/flint.socket");
    private static readonly Flag Id = new("--id", true, "MicroVM unique identifier (1-64 alphanumerics or '-').", "anonymous-instance");
    private static readonly Flag ConfigFile = new("--config-file", true, "Start the microVM from this JSON configuration file.");
    private static readonly Flag NoApi = new("--no-api", false, "Run without the API server; needs --config-file.");
    private static readonly Flag BootTimer = new("--boot-timer", false, "Add the boot timer device at 0xC0000000 and log the guest boot time.");
    private static readonly Flag Level = new("--level", true, "Log level: Error, Warning, Info, Debug, Trace, Off.");
    private static readonly Flag LogPath = new("--log-path", true, "Path to a file or FIFO for the log.");
    private static readonly Flag ShowLevel = new("--show-level", false, "Show the level in log lines.");
    private static readonly Flag ShowLogOrigin = new("--show-log-origin", false, "Show the origin in log lines.");
    private static readonly Flag Module = new("--module", true, "Only log lines from this module.");
    private static readonly Flag MetricsPath = new("--metrics-path", true, "Path to a file or FIFO for metrics.");
    private static readonly Flag SeccompFilter = new("--seccomp-filter", true, "Custom seccomp filter file (seccompiler JSON).");
    private static readonly Flag NoSeccomp = new("--no-seccomp", false, "Disable seccomp filtering.");
    private static readonly Flag Metadata = new("--metadata", true, "MMDS contents as a JSON file.");
    private static readonly Flag MaxPayload = new("--http-api-max-payload-size", true, "HTTP API request payload limit in bytes.", "51200");
    private static readonly Flag MmdsSizeLimit = new("--mmds-size-limit", true, "MMDS data store size limit in bytes.");
    private static readonly Flag StartTimeUs = new("--start-time-us", true, "Process start time (set by the jailer).");
    private static readonly Flag StartTimeCpuUs = new("--start-time-cpu-us", true, "Process start CPU time (set by the jailer).");
    private static readonly Flag ParentCpuTimeUs = new("--parent-cpu-time-us", true, "Parent process CPU time (set by the jailer).");
    private static readonly Flag CpuTemplate = new("--cpu-template", true, "Flint extension: force a built-in CPU template (None, KvmPvm); default: detected from the host.");
    private static readonly Flag VersionFlag = new("--version", false, "Print the binary version and exit.");
    private static readonly Flag HelpFlag = new("--help", false, "Print this help and exit.");

    private static readonly ArgParser Parser = new([ApiSock, Id, ConfigFile, NoApi, BootTimer, Level, LogPath, ShowLevel,
        ShowLogOrigin, Module, MetricsPath, SeccompFilter, NoSeccomp, Metadata, MaxPayload, MmdsSizeLimit, StartTimeUs,
        StartTimeCpuUs, ParentCpuTimeUs, CpuTemplate, VersionFlag, HelpFlag]);

    public static int Run(string[] args)
    {
        long startTimestamp = System.Diagnostics.Stopwatch.GetTimestamp();
        var parsed = Parser.Parse(args);
        if (parsed.Error != null) return ArgError(parsed.Error);
        if (parsed.Has(HelpFlag))
        {
            Console.Write(Parser.Help("flint: a Firecracker-compatible microVM monitor on KVM."));
            return ExitCodes.Ok;
        }
        if (parsed.Has(VersionFlag))
        {
            Console.WriteLine($"Flint v{Version}");
            return ExitCodes.Ok;
        }
        foreach (var numeric in new[] { MaxPayload, MmdsSizeLimit, StartTimeUs, StartTimeCpuUs, ParentCpuTimeUs })
            if (!parsed.TryGetLong(numeric, out _, out var err)) return ArgError(err);
        return Start(parsed, startTimestamp);
    }

    private static long? Long(ParsedArgs p, Flag f) => p.TryGetLong(f, out var v, out _) ? v : null;

    private static int ArgError(string message)
    {
        Console.Error.WriteLine($"Arguments parsing error: {message}");
        return ExitCodes.ArgParsing;
    }

    private static int Start(ParsedArgs p, long startTimestamp)
    {
        string id = p.Get(Id)!;
        if (id.Length is 0 or > 64 || !id.All(c => char.IsAsciiLetterOrDigit(c) || c == '-'))
        {
            Console.Error.WriteLine($"Arguments parsing error: Invalid instance ID: {id} (1-64 alphanumerics or '-').");
            return ExitCodes.ArgParsing;
        }
        string? configFile = p.Get(ConfigFile);
        bool noApi = p.Has(NoApi);
        if (noApi && configFile == null)
        {
            Console.Error.WriteLine("Arguments parsing error: --no-api requires --config-file.");
            return ExitCodes.ArgParsing;
        }
        LogLevel? level = null;
        if (p.Get(Level) is { } ls)
        {
            if (!LogLevels.TryParse(ls, out var l))
            {
                Console.Error.WriteLine($"Arguments parsing error: Invalid log level: {ls}.");
                return ExitCodes.ArgParsing;
            }
            level = l;
        }

        Logger.InstanceId = id;
        Thread.CurrentThread.Name ??= "main";
        try
        {
            if (p.Get(LogPath) != null || level != null || p.Has(ShowLevel) || p.Has(ShowLogOrigin) || p.Get(Module) != null)
                Logger.Configure(p.Get(LogPath), level, p.Has(ShowLevel) ? true : null, p.Has(ShowLogOrigin) ? true : null, p.Get(Module));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"Failed to open the log file: {e.Message}");
            return ExitCodes.GenericError;
        }
        Logger.Info($"Running Flint v{Version}");

        Flint.Seccomp.SeccompConfig seccomp;
        try
        {
            seccomp = p.Has(NoSeccomp) ? Flint.Seccomp.SeccompConfig.Disabled
                : p.Get(SeccompFilter) is { } filterFile ? Flint.Seccomp.SeccompConfig.Load(filterFile)
                : Flint.Seccomp.SeccompConfig.Default;
        }
        catch (Exception e) when (e is Flint.Seccomp.SeccompConfigException or IOException or UnauthorizedAccessException)
        {
            Logger.Error($"Seccomp error: {e.Message}");
            return ExitCodes.BadConfiguration;
        }

        p.TryGetLong(MaxPayload, out var maxPayloadValue, out _);
        p.TryGetLong(MmdsSizeLimit, out var mmdsLimitValue, out _);
        long maxPayload = maxPayloadValue ?? 51200;
        long mmdsLimit = mmdsLimitValue ?? maxPayload;
        if (mmdsLimit <= 0 || mmdsLimit > int.MaxValue)
        {
            Console.Error.WriteLine($"Arguments parsing error: Invalid --mmds-size-limit: {mmdsLimit}.");
            return ExitCodes.ArgParsing;
        }
        var mmds = new Flint.Devices.Mmds.MmdsStore((int)mmdsLimit);
        if (p.Get(Metadata) is { } metadataFile)
        {
            try { mmds.Put(File.ReadAllText(metadataFile)); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or Flint.Devices.Mmds.MmdsStoreException)
            {
                Logger.Error($"Unable to load the MMDS metadata from {metadataFile}: {e.Message}");
                return ExitCodes.BadConfiguration;
            }
        }

        VmConfig? config = null;
        if (configFile != null)
        {
            try { config = ConfigLoader.LoadFile(configFile); }
            catch (ConfigException e)
            {
                Logger.Error($"Configuration for VMM from one single json failed: {e.Message}");
                return ExitCodes.BadConfiguration;
            }
        }

        if (maxPayload <= 0 || maxPayload > int.MaxValue)
        {
            Console.Error.WriteLine($"Arguments parsing error: Invalid --http-api-max-payload-size: {maxPayload}.");
            return ExitCodes.ArgParsing;
        }

        var options = new VmOptions
        {
            BootTimer = p.Has(BootTimer),
            CpuTemplate = p.Get(CpuTemplate),
            ConsoleOutput = Console.OpenStandardOutput(),
            ConsoleInputFd = 0,
            MmdsStore = mmds,
        };
        var process = new FlintProcess(new FlintProcess.Settings(
            id, noApi ? null : p.Get(ApiSock), (int)maxPayload, config, options, p.Get(MetricsPath), startTimestamp, seccomp,
            Long(p, StartTimeUs), Long(p, StartTimeCpuUs), Long(p, ParentCpuTimeUs)));
        return process.Run();
    }
}
