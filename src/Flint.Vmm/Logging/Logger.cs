using System.Runtime.CompilerServices;

namespace Flint.Vmm.Logging;

/// <summary>
/// The process logger, in Firecracker's line format: `&lt;timestamp&gt; [&lt;id&gt;:&lt;thread&gt;(:&lt;LEVEL&gt;)(:&lt;file&gt;:&lt;line&gt;)] message`.
/// Writes go to stdout until a log path is configured (--log-path or PUT /logger), then to that file or FIFO.
/// The origin comes from the caller's source file and line (compile-time caller info, no stack walk); the module
/// filter keeps only lines whose origin path contains the module (e.g. `Devices/Virtio` or `Flint.Api`).
/// </summary>
public static class Logger
{
    private static readonly object Lock = new();
    private static TextWriter _out = Console.Out;
    private static bool _configured;

    public static string InstanceId { get; set; } = "anonymous-instance";
    public static LogLevel Level { get; set; } = LogLevel.Info;
    public static bool ShowLevel { get; set; } = true;
    public static bool ShowOrigin { get; set; }
    /// <summary>Only log lines from source paths containing this (null: everything).</summary>
    public static string? Module { get; set; }
    public static long LinesWritten;

    /// <summary>The fd of the configured log file, or -1 while logging to stdout (the fatal-signal handlers write here too).</summary>
    public static int LogFd { get; private set; } = -1;

    /// <summary>Directs the log to a file or FIFO (opened for append, as Firecracker does). Allowed once.</summary>
    public static void Configure(string? path, LogLevel? level, bool? showLevel, bool? showOrigin, string? module = null)
    {
        lock (Lock)
        {
            if (_configured) throw new InvalidOperationException("Logger can only be configured once.");
            if (path != null)
            {
                var fs = new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.ReadWrite);
                _out = new StreamWriter(fs) { AutoFlush = true };
                LogFd = (int)fs.SafeFileHandle.DangerousGetHandle();
                Flint.Sys.FatalSignals.SetLogFd(LogFd); // the native fatal-signal handlers log here too (also for PUT /logger)
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
        var now = DateTime.UtcNow;
        string thread = Thread.CurrentThread.Name ?? "main";
        string tags = thread;
        if (ShowLevel) tags += ":" + LogLevels.Name(level);
        if (ShowOrigin) tags += $":{origin}:{line}";
        string text = $"{now:yyyy-MM-ddTHH:mm:ss.fffffff}00 [{InstanceId}:{tags}] {message}";
        lock (Lock)
        {
            try
            {
                _out.WriteLine(text);
                _out.Flush();
                LinesWritten++;
            }
            catch (IOException) { }
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
