using System.CommandLine;
using System.CommandLine.Parsing;
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

    private static readonly Option<string> ApiSock = new("--api-sock") { Description = "Path to the API Unix socket.", DefaultValueFactory = _ => "/run/flint.socket" };
    private static readonly Option<string> Id = new("--id") { Description = "MicroVM unique identifier (1-64 alphanumerics or '-').", DefaultValueFactory = _ => "anonymous-instance" };
    private static readonly Option<string?> ConfigFile = new("--config-file") { Description = "Start the microVM from this JSON configuration file." };
    private static readonly Option<bool> NoApi = new("--no-api") { Description = "Run without the API server; needs --config-file." };
    private static readonly Option<bool> BootTimer = new("--boot-timer") { Description = "Add the boot timer device at 0xC0000000 and log the guest boot time." };
    private static readonly Option<string?> Level = new("--level") { Description = "Log level: Error, Warning, Info, Debug, Trace, Off." };
    private static readonly Option<string?> LogPath = new("--log-path") { Description = "Path to a file or FIFO for the log." };
    private static readonly Option<bool> ShowLevel = new("--show-level") { Description = "Show the level in log lines." };
    private static readonly Option<bool> ShowLogOrigin = new("--show-log-origin") { Description = "Show the origin in log lines." };
    private static readonly Option<string?> Module = new("--module") { Description = "Only log lines from this module." };
    private static readonly Option<string?> MetricsPath = new("--metrics-path") { Description = "Path to a file or FIFO for metrics." };
    private static readonly Option<string?> SeccompFilter = new("--seccomp-filter") { Description = "Custom seccomp filter file." };
    private static readonly Option<bool> NoSeccomp = new("--no-seccomp") { Description = "Disable seccomp filtering." };
    private static readonly Option<string?> Metadata = new("--metadata") { Description = "MMDS contents as a JSON file." };
    private static readonly Option<long> MaxPayload = new("--http-api-max-payload-size") { Description = "HTTP API request payload limit in bytes.", DefaultValueFactory = _ => 51200 };
    private static readonly Option<long?> MmdsSizeLimit = new("--mmds-size-limit") { Description = "MMDS data store size limit in bytes." };
    private static readonly Option<ulong?> StartTimeUs = new("--start-time-us") { Description = "Process start time (set by the jailer)." };
    private static readonly Option<ulong?> StartTimeCpuUs = new("--start-time-cpu-us") { Description = "Process start CPU time (set by the jailer)." };
    private static readonly Option<ulong?> ParentCpuTimeUs = new("--parent-cpu-time-us") { Description = "Parent process CPU time (set by the jailer)." };
    private static readonly Option<string?> CpuTemplate = new("--cpu-template") { Description = "Flint extension: force a built-in CPU template (None, KvmPvm); default: detected from the host." };
    private static readonly Option<bool> VersionOpt = new("--version") { Description = "Print the binary version and exit." };

    public static int Run(string[] args)
    {
        long startTimestamp = System.Diagnostics.Stopwatch.GetTimestamp();
        var root = new RootCommand("Flint: a Firecracker-compatible microVM monitor on KVM.");
        // Our own --version prints Firecracker-style "Flint vX"; keep the built-in --help.
        foreach (var o in root.Options.Where(o => o is VersionOption).ToList()) root.Options.Remove(o);
        foreach (var o in new Option[] { ApiSock, Id, ConfigFile, NoApi, BootTimer, Level, LogPath, ShowLevel, ShowLogOrigin,
                     Module, MetricsPath, SeccompFilter, NoSeccomp, Metadata, MaxPayload, MmdsSizeLimit, StartTimeUs,
                     StartTimeCpuUs, ParentCpuTimeUs, CpuTemplate, VersionOpt })
            root.Options.Add(o);

        var parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            foreach (var e in parsed.Errors) Console.Error.WriteLine($"Arguments parsing error: {e.Message}");
            return ExitCodes.ArgParsing;
        }
        if (parsed.Action is System.CommandLine.Help.HelpAction)
        {
            parsed.Invoke();
            return ExitCodes.Ok;
        }
        if (parsed.GetValue(VersionOpt))
        {
            Console.WriteLine($"Flint v{Version}");
            return ExitCodes.Ok;
        }
        return Start(parsed, startTimestamp);
    }

    private static int Start(ParseResult p, long startTimestamp)
    {
        string id = p.GetValue(Id)!;
        if (id.Length is 0 or > 64 || !id.All(c => char.IsAsciiLetterOrDigit(c) || c == '-'))
        {
            Console.Error.WriteLine($"Arguments parsing error: Invalid instance ID: {id} (1-64 alphanumerics or '-').");
            return ExitCodes.ArgParsing;
        }
        string? configFile = p.GetValue(ConfigFile);
        bool noApi = p.GetValue(NoApi);
        if (noApi && configFile == null)
        {
            Console.Error.WriteLine("Arguments parsing error: --no-api requires --config-file.");
            return ExitCodes.ArgParsing;
        }
        LogLevel? level = null;
        if (p.GetValue(Level) is { } ls)
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
            if (p.GetValue(LogPath) != null || level != null || p.GetValue(ShowLevel) || p.GetValue(ShowLogOrigin))
                Logger.Configure(p.GetValue(LogPath), level, p.GetValue(ShowLevel) ? true : null, p.GetValue(ShowLogOrigin) ? true : null);
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
            seccomp = p.GetValue(NoSeccomp) ? Flint.Seccomp.SeccompConfig.Disabled
                : p.GetValue(SeccompFilter) is { } filterFile ? Flint.Seccomp.SeccompConfig.Load(filterFile)
                : Flint.Seccomp.SeccompConfig.Default;
        }
        catch (Exception e) when (e is Flint.Seccomp.SeccompConfigException or IOException or UnauthorizedAccessException)
        {
            Logger.Error($"Seccomp error: {e.Message}");
            return ExitCodes.BadConfiguration;
        }

        long mmdsLimit = p.GetValue(MmdsSizeLimit) ?? p.GetValue(MaxPayload);
        if (mmdsLimit <= 0 || mmdsLimit > int.MaxValue)
        {
            Console.Error.WriteLine($"Arguments parsing error: Invalid --mmds-size-limit: {mmdsLimit}.");
            return ExitCodes.ArgParsing;
        }
        var mmds = new Flint.Devices.Mmds.MmdsStore((int)mmdsLimit);
        if (p.GetValue(Metadata) is { } metadataFile)
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

        long maxPayload = p.GetValue(MaxPayload);
        if (maxPayload <= 0 || maxPayload > int.MaxValue)
        {
            Console.Error.WriteLine($"Arguments parsing error: Invalid --http-api-max-payload-size: {maxPayload}.");
            return ExitCodes.ArgParsing;
        }

        var options = new VmOptions
        {
            BootTimer = p.GetValue(BootTimer),
            CpuTemplate = p.GetValue(CpuTemplate),
            ConsoleOutput = Console.OpenStandardOutput(),
            ConsoleInputFd = 0,
            MmdsStore = mmds,
        };
        var process = new FlintProcess(new FlintProcess.Settings(
            id, noApi ? null : p.GetValue(ApiSock), (int)maxPayload, config, options, p.GetValue(MetricsPath), startTimestamp, seccomp));
        return process.Run();
    }
}
