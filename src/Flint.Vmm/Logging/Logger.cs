using System.Runtime.CompilerServices;

namespace Flint.Vmm.Logging;

/// <summary>
/// The process logger, in Firecracker's line format: `&lt;local time, ns&gt; [&lt;id&gt;:&lt;thread&gt;(:&lt;LEVEL&gt;)(:&lt;file&gt;:&lt;line&gt;)] message`,
/// the level only with --show-level and the origin only with --show-log-origin (both off by default, as Firecracker).
/// Writes go to stdout until a log path is configured (--log-path, PUT /logger or the config file's "logger"), then to
/// that file or FIFO, opened non-blocking: a line that cannot be written (FIFO nobody drains, full disk) is dropped and
/// counted in logger.missed_log_count (and log_fails when the write failed rather than would block), never waited for.
/// The origin comes from the caller's source file and line (compile-time caller info, no stack walk); the module
/// filter keeps only lines whose origin path contains the module (e.g. `Devices/Virtio` or `Flint.Api`).
/// </summary>
public static class Logger
{
    private static readonly object Lock = new();

    // The local time zone is read (TZ, /etc/localtime) on first use: do it when the logger is first touched, at
    // start-up, not in a line logged later from a thread whose seccomp filter may not allow opening files.
    static Logger() => _ = TimeZoneInfo.Local;
    // Stdout through plain write(2) (FdWriteStream), not Console.Out: a line can come from a vCPU thread, and .NET's
    // console initialises the terminal on its first write (ioctl TCGETS), which the vcpu filter refuses. With
    // --level Error and no --log-path nothing is written at start, so a device's error line on a vCPU thread was that
    // first write and killed flint (148). Each line is flushed as it is written.
    private static readonly TextWriter _out = new StreamWriter(new Flint.Sys.FdWriteStream(1), new System.Text.UTF8Encoding(false));
    private static NonBlockingFile? _file;
    private static bool _configured;

    public static string InstanceId { get; set; } = "anonymous-instance";
    public static LogLevel Level { get; set; } = LogLevel.Info;
    /// <summary>Firecracker's default: no level in the tag unless --show-level (or show_level) asks for it.</summary>
    public static bool ShowLevel { get; set; }
    public static bool ShowOrigin { get; set; }
    /// <summary>Only log lines from source paths containing this (null: everything).</summary>
    public static string? Module { get; set; }
    public static long LinesWritten;
    /// <summary>Lines dropped because the destination could not take them (logger.missed_log_count).</summary>
    public static long MissedLogCount;
    /// <summary>Lines dropped because the write failed outright, e.g. a full disk (logger.log_fails).</summary>
    public static long LogFails;

    /// <summary>The fd of the configured log file, or -1 while logging to stdout (the fatal-signal handlers write here too).</summary>
    public static int LogFd { get; private set; } = -1;

    /// <summary>Directs the log to a file or FIFO (opened non-blocking, for append). Allowed once (the API's rule).</summary>
    public static void Configure(string? path, LogLevel? level, bool? showLevel, bool? showOrigin, string? module = null)
    {
        lock (Lock)
        {
            if (_configured) throw new InvalidOperationException("Logger can only be configured once.");
            Update(path, level, showLevel, showOrigin, module);
            _configured = true;
        }
    }

    /// <summary>
    /// Applies a logger configuration on top of the current one, as Firecracker's Logger::update: the config file's
    /// "logger" section after the command-line flags. The path is opened first, so a bad path changes nothing.
    /// </summary>
    public static void Update(string? path, LogLevel? level, bool? showLevel, bool? showOrigin, string? module = null)
    {
        lock (Lock)
        {
            if (path != null)
            {
                var file = NonBlockingFile.Open(path);
                var old = _file;
                _file = file;
                LogFd = file.Fd;
                Flint.Sys.FatalSignals.SetLogFd(LogFd); // the native fatal-signal handlers log here too (also for PUT /logger)
                old?.Dispose();
            }
            if (level.HasValue) Level = level.Value;
            if (showLevel.HasValue) ShowLevel = showLevel.Value;
            if (showOrigin.HasValue) ShowOrigin = showOrigin.Value;
            if (module != null) Module = module;
            _configured = true;
        }
    }

    public static bool IsEnabled(LogLevel l) => l != LogLevel.Off && l <= Level;

    public static void Error(string m, [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) => Log(LogLevel.Error, m, file, line);
    public static void Warn(string m, [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) => Log(LogLevel.Warning, m, file, line);
    public static void Info(string m, [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) => Log(LogLevel.Info, m, file, line);
    public static void Debug(string m, [CallerFilePath] string file = "", [CallerLineNumber] int line = 0) => Log(LogLevel.Debug, m, file, line);

    public static void Log(LogLevel level, string message, [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        if (!IsEnabled(level)) return;
        string origin = Origin(file);
        if (Module is { } m && !origin.Contains(m, StringComparison.Ordinal)) return;
        var now = DateTime.Now;
        string thread = Thread.CurrentThread.Name ?? "main";
        string tags = thread;
        if (ShowLevel) tags += ":" + LogLevels.Name(level);
        if (ShowOrigin) tags += $":{origin}:{line}";
        // Firecracker's LocalTime: local time, nanoseconds (DateTime has 100 ns ticks, so the last two digits are 0).
        string text = $"{now:yyyy-MM-ddTHH:mm:ss.fffffff}00 [{InstanceId}:{tags}] {message}";
        lock (Lock)
        {
            if (_file is { } f)
            {
                switch (f.Write(System.Text.Encoding.UTF8.GetBytes(text + "\n")))
                {
                    case WriteOutcome.Written: LinesWritten++; break;
                    case WriteOutcome.WouldBlock: MissedLogCount++; break;
                    default: MissedLogCount++; LogFails++; break;
                }
                return;
            }
            try
            {
                _out.WriteLine(text);
                _out.Flush();
                LinesWritten++;
            }
            catch (IOException) { MissedLogCount++; LogFails++; }
        }
    }

    /// <summary>The source path from `src/` on (e.g. `src/Flint.Vmm/VcpuRunner.cs`), as Firecracker shows `src/vmm/...`.</summary>
    internal static string Origin(string file)
    {
        if (file.Length == 0) return "unknown";
        int i = file.LastIndexOf("/src/", StringComparison.Ordinal);
        return i >= 0 ? file[(i + 1)..] : Path.GetFileName(file);
    }
}
