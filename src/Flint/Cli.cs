using System.Text.Json;
using Flint.Vmm;
using Flint.Vmm.Config;
using Flint.Vmm.Logging;

namespace Flint;

/// <summary>
/// The `flint` command line: Firecracker's flags, parse errors, `--help`, `--version` and exit codes as its main.rs
/// has them (docs/compatibility.md lists each flag), so scripts and SDKs written for firecracker run unchanged.
/// Exit codes: 153 for argument errors, 152 only for a bad `--level`, 1 for everything else that stops a start
/// (a config file that cannot be read or built, metadata, seccomp, logger, API socket).
/// </summary>
public static class Cli
{
    /// <summary>The version flint reports everywhere (see <see cref="Versions"/>); FlintProcess hands it to the API.</summary>
    public const string Version = Versions.Firecracker;

    /// <summary>Firecracker's default socket path: a swapped-in binary must answer where firecracker did.</summary>
    public const string DefaultApiSock = "/run/firecracker.socket";

    private const int DefaultMaxPayload = 51200;

    // Firecracker's arguments, with its help texts word for word (src/firecracker/src/main.rs).
    private static readonly Flag ApiSock = new("api-sock", true, "Path to unix domain socket used by the API.", DefaultApiSock);
    private static readonly Flag Id = new("id", true, "MicroVM unique identifier.", "anonymous-instance");
    private static readonly Flag SeccompFilter = new("seccomp-filter", true,
        "Optional parameter which allows specifying the path to a custom seccomp filter. For advanced users.")
    { Forbids = ["no-seccomp"] };
    private static readonly Flag NoSeccomp = new("no-seccomp", false,
        "Optional parameter which allows starting and using a microVM without seccomp filtering. Not recommended.")
    { Forbids = ["seccomp-filter"] };
    private static readonly Flag StartTimeUs = new("start-time-us", true, "Process start time (wall clock, microseconds). This parameter is optional.");
    private static readonly Flag StartTimeCpuUs = new("start-time-cpu-us", true, "Process start CPU time (wall clock, microseconds). This parameter is optional.");
    private static readonly Flag ParentCpuTimeUs = new("parent-cpu-time-us", true, "Parent process CPU time (wall clock, microseconds). This parameter is optional.");
    private static readonly Flag ConfigFile = new("config-file", true, "Path to a file that contains the microVM configuration in JSON format.");
    private static readonly Flag Metadata = new("metadata", true, "Path to a file that contains metadata in JSON format to add to the mmds.");
    private static readonly Flag NoApi = new("no-api", false,
        "Optional parameter which allows starting and using a microVM without an active API socket.")
    { Requires = "config-file" };
    private static readonly Flag LogPath = new("log-path", true, "Path to a fifo or a file used for configuring the logger on startup.");
    private static readonly Flag Level = new("level", true, "Set the logger level.");
    private static readonly Flag Module = new("module", true, "Set the logger module filter.");
    private static readonly Flag ShowLevel = new("show-level", false, "Whether or not to output the level in the logs.");
    private static readonly Flag ShowLogOrigin = new("show-log-origin", false, "Whether or not to include the file path and line number of the log's origin.");
    private static readonly Flag MetricsPath = new("metrics-path", true, "Path to a fifo or a file used for configuring the metrics on startup.");
    private static readonly Flag BootTimer = new("boot-timer", false,
        "Whether or not to load boot timer device for logging elapsed time since InstanceStart command.");
    private static readonly Flag VersionFlag = new("version", false, "Print the binary version number.");
    private static readonly Flag SnapshotVersion = new("snapshot-version", false, "Print the supported data format version.");
    private static readonly Flag DescribeSnapshot = new("describe-snapshot", true, "Print the data format version of the provided snapshot state file.");
    private static readonly Flag MaxPayload = new("http-api-max-payload-size", true, "Http API request payload max size, in bytes.", "51200");
    private static readonly Flag MmdsSizeLimit = new("mmds-size-limit", true, "Mmds data store limit, in bytes.");
    private static readonly Flag EnablePci = new("enable-pci", false, "Enables PCIe support.");
    // Firecracker's parser adds this entry itself when --help is given, so it shows in the list.
    private static readonly Flag HelpFlag = new("help", false, "Show the help message.");
    private static readonly Flag CpuTemplate = new("cpu-template", true,
        "Flint extension: force a built-in CPU template (None, KvmPvm); default: detected from the host.");

    private static readonly ArgParser Parser = new([ApiSock, Id, SeccompFilter, NoSeccomp, StartTimeUs, StartTimeCpuUs,
        ParentCpuTimeUs, ConfigFile, Metadata, NoApi, LogPath, Level, Module, ShowLevel, ShowLogOrigin, MetricsPath,
        BootTimer, VersionFlag, SnapshotVersion, DescribeSnapshot, MaxPayload, MmdsSizeLimit, EnablePci, HelpFlag, CpuTemplate]);

    /// <summary>Firecracker flags for features flint does not have: refused by name, never ignored (none today).</summary>
    private static readonly (Flag Flag, string Reason)[] Unsupported = [];

    public static int Run(string[] args)
    {
        long startTimestamp = System.Diagnostics.Stopwatch.GetTimestamp();
        Thread.CurrentThread.Name ??= "main";
        var parsed = Parser.Parse(args);
        if (parsed.Error is { } error) return ArgFail(error);
        if (parsed.HelpRequested)
        {
            Console.Out.Write($"Firecracker v{Version}\n\n{Parser.FormattedHelp()}\n");
            return ExitCodes.Ok;
        }
        if (parsed.VersionRequested)
        {
            Console.Out.Write($"Firecracker v{Version}\n\n");
            return ExitCodes.Ok;
        }
        // As Firecracker's main: after --version, before anything is set up.
        if (parsed.Has(SnapshotVersion))
        {
            Console.Out.Write($"{Flint.Snapshot.SnapshotFormat.VersionText}\n");
            return ExitCodes.Ok;
        }
        if (parsed.Get(DescribeSnapshot) is { } snapshotPath) return DescribeSnapshotFile(snapshotPath);
        foreach (var (flag, reason) in Unsupported)
            if (parsed.Has(flag)) return ArgFail(new ArgParseError(ArgParseErrorKind.Unsupported, flag.Name, Reason: reason));
        return Start(parsed, startTimestamp);
    }

    /// <summary>
    /// Firecracker's main() on an error: the error's text to the log (stdout until a log file is set), its Debug form
    /// to stderr, then the exit line.
    /// </summary>
    private static int Fail(int code, string message, string debug)
    {
        Logger.Error(message);
        Console.Error.WriteLine($"Error: {debug}");
        Logger.Error($"Firecracker exiting with error. exit_code={code}");
        return code;
    }

    private static int ArgFail(ArgParseError e) => ArgFail(e.Message, e.DebugText);

    // The "\n\n" is literal, as Firecracker prints it: its message comes from a doc comment (displaydoc), where the
    // escape is not interpreted.
    private static int ArgFail(string message, string debug) =>
        Fail(ExitCodes.ArgParsing, $"Arguments parsing error: {message} \\n\\nFor more information try --help.", $"ParseArguments({debug})");

    private static int GenericFail(string message) => Fail(ExitCodes.GenericError, message, message);

    /// <summary>--describe-snapshot: the data format version of a state file ("v1.0.0"), or Firecracker's error and exit 1.</summary>
    private static int DescribeSnapshotFile(string path)
    {
        byte[] bytes;
        try { bytes = Flint.Snapshot.SnapshotFile.ReadBounded(path); }
        catch (Flint.Snapshot.SnapshotFormatException e)
        {
            return GenericFail($"When printing Snapshot Data format: Invalid data format version of snapshot file: {e.Message}");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            return GenericFail($"When printing Snapshot Data format: Unable to open snapshot state file: {IoErrorText.Of(e, path)}");
        }
        try
        {
            Console.Out.Write($"{Flint.Snapshot.SnapshotFile.DescribeVersion(bytes)}\n");
            return ExitCodes.Ok;
        }
        catch (Flint.Snapshot.SnapshotFormatException e)
        {
            return GenericFail($"When printing Snapshot Data format: Invalid data format version of snapshot file: {e.Message}");
        }
    }

    private static int Start(ParsedArgs p, long startTimestamp)
    {
        string id = p.Get(Id)!;
        if (InstanceIdError(id) is { } idError)
            return ArgFail($"Invalid instance ID: {idError}", $"InvalidInstanceId({RustDebug.Quote(id)})");
        Logger.InstanceId = id;

        LogLevel? level = null;
        if (p.Get(Level) is { } ls)
        {
            if (!LogLevels.TryParse(ls, out var l))
                return Fail(ExitCodes.BadConfiguration,
                    $"Invalid value for logger level: Failed to parse string to level filter: {ls}.Possible values: [Error, Warning, Info, Debug]",
                    $"InvalidLogLevel(LevelFilterFromStrError({RustDebug.Quote(ls)}))");
            level = l;
        }
        try
        {
            if (p.Get(LogPath) != null || level != null || p.Has(ShowLevel) || p.Has(ShowLogOrigin) || p.Get(Module) != null)
                Logger.Configure(p.Get(LogPath), level, p.Has(ShowLevel) ? true : null, p.Has(ShowLogOrigin) ? true : null, p.Get(Module));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return GenericFail($"Could not initialize logger: Failed to open target file: {IoErrorText.Of(e, p.Get(LogPath))}");
        }
        // Firecracker's banner, word for word (its test suite looks for it on the first line); Flint's own release at Debug.
        Logger.Info($"Running Firecracker v{Version}");
        if (Logger.IsEnabled(LogLevel.Debug)) Logger.Debug($"Flint v{Versions.Flint}");

        if (!TryGetNumber(p, MaxPayload, out long? maxPayloadValue, out int rc)
            || !TryGetNumber(p, MmdsSizeLimit, out long? mmdsLimitValue, out rc)
            || !TryGetNumber(p, StartTimeUs, out long? startTimeUs, out rc)
            || !TryGetNumber(p, StartTimeCpuUs, out long? startTimeCpuUs, out rc)
            || !TryGetNumber(p, ParentCpuTimeUs, out long? parentCpuTimeUs, out rc))
            return rc;
        long maxPayload = maxPayloadValue ?? DefaultMaxPayload;
        if (maxPayload is <= 0 or > int.MaxValue)
            return ArgFail($"Invalid --http-api-max-payload-size: {maxPayload}.", $"InvalidValue(\"{MaxPayload.Name}\")");
        // Firecracker: the MMDS limit defaults to the API payload limit.
        long mmdsLimit = mmdsLimitValue ?? maxPayload;
        if (mmdsLimit is <= 0 or > int.MaxValue)
            return ArgFail($"Invalid --mmds-size-limit: {mmdsLimit}.", $"InvalidValue(\"{MmdsSizeLimit.Name}\")");

        Flint.Seccomp.SeccompConfig seccomp;
        try
        {
            seccomp = p.Has(NoSeccomp) ? Flint.Seccomp.SeccompConfig.Disabled
                : p.Get(SeccompFilter) is { } filterFile ? Flint.Seccomp.SeccompConfig.Load(filterFile)
                : Flint.Seccomp.SeccompConfig.Default;
        }
        catch (Flint.Seccomp.SeccompConfigException e)
        {
            return GenericFail($"Seccomp error: {e.Message}");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return GenericFail($"Seccomp error: {IoErrorText.Of(e, p.Get(SeccompFilter))}");
        }

        bool noApi = p.Has(NoApi);
        VmConfig? config = null;
        if (p.Get(ConfigFile) is { } configFile)
        {
            string json;
            try { json = File.ReadAllText(configFile); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return GenericFail($"Unable to open or read from the configuration file: {IoErrorText.Of(e, configFile)}: {configFile}");
            }
            try { config = ConfigLoader.Parse(json); }
            catch (ConfigException e)
            {
                // Firecracker's chain of errors for this case, outermost first.
                return GenericFail($"{(noApi ? "RunWithoutApiError" : "RunWithApiError")} error: Failed to build MicroVM from Json: "
                    + $"Configuration for VMM from one single json failed: {e.Message}");
            }
        }

        var mmds = new Flint.Devices.Mmds.MmdsStore((int)mmdsLimit);
        if (p.Get(Metadata) is { } metadataFile && LoadMetadata(mmds, metadataFile) is { } metadataError)
            return GenericFail(metadataError);

        var options = new VmOptions
        {
            BootTimer = p.Has(BootTimer),
            EnablePci = p.Has(EnablePci),
            CpuTemplate = p.Get(CpuTemplate),
            ConsoleOutput = Flint.Vmm.Builder.ConsoleOutput.OpenStdout(),
            ConsoleInputFd = 0,
            MmdsStore = mmds,
        };
        var process = new FlintProcess(new FlintProcess.Settings(
            id, noApi ? null : p.Get(ApiSock), (int)maxPayload, config, options, p.Get(MetricsPath), startTimestamp, seccomp,
            startTimeUs, startTimeCpuUs, parentCpuTimeUs));
        int code = process.Run();
        // Firecracker's main.rs maps a config file that fails to build (RunWithApi/RunWithoutApiError::BuildFromJson)
        // to GenericError: 152 is only for a bad --level. FlintProcess still answers 152 there, and no VM exit is 152.
        return code == ExitCodes.BadConfiguration ? ExitCodes.GenericError : code;
    }

    /// <summary>Firecracker's validate_instance_id: 1 to 64 characters, letters, digits or '-' (flint: ASCII only).</summary>
    private static string? InstanceIdError(string id)
    {
        if (id.Length is < 1 or > 64) return $"Invalid len ({id.Length});  the length must be between 1 and 64";
        for (int i = 0; i < id.Length; i++)
            if (!char.IsAsciiLetterOrDigit(id[i]) && id[i] != '-') return $"Invalid char ({id[i]}) at position {i}";
        return null;
    }

    /// <summary>A non-negative integer flag. Firecracker aborts on a bad one ("expected to be of 'usize' type"); flint exits 153.</summary>
    private static bool TryGetNumber(ParsedArgs p, Flag f, out long? value, out int exitCode)
    {
        value = null;
        exitCode = ExitCodes.Ok;
        if (p.Get(f) is not { } s) return true;
        if (long.TryParse(s, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long v))
        {
            value = v;
            return true;
        }
        string type = f == MaxPayload || f == MmdsSizeLimit ? "usize" : "u64";
        exitCode = ArgFail($"'{f.Name}' parameter expected to be of '{type}' type.", $"InvalidValue({RustDebug.Quote(f.Name)}, {RustDebug.Quote(s)})");
        return false;
    }

    /// <summary>`--metadata`: fills the MMDS store, or says why not in Firecracker's words (null when loaded).</summary>
    private static string? LoadMetadata(Flint.Devices.Mmds.MmdsStore mmds, string path)
    {
        string json;
        try { json = File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return $"Unable to open or read from the mmds content file: {IoErrorText.Of(e, path)}: {path}";
        }
        try
        {
            using var _ = JsonDocument.Parse(json);
        }
        catch (JsonException e)
        {
            return $"MMDS error: metadata provided not valid json at line {(e.LineNumber ?? 0) + 1} column {e.BytePositionInLine ?? 0}";
        }
        try { mmds.Put(json); }
        catch (Flint.Devices.Mmds.MmdsStoreException e) when (e.StatusCode == 413)
        {
            return "Populating MMDS from file failed: The MMDS patch request doesn't fit.";
        }
        catch (Flint.Devices.Mmds.MmdsStoreException)
        {
            return "MMDS error: metadata provided not valid json";
        }
        Logger.Info("Successfully added metadata to mmds from file");
        return null;
    }
}
