namespace Flint.Vmm.Logging;

/// <summary>
/// The process logger, in Firecracker's line format: `&lt;timestamp&gt; [&lt;id&gt;:&lt;thread&gt;:&lt;LEVEL&gt;] message`.
/// Writes go to stdout until a log path is configured (--log-path or PUT /logger), then to that file or FIFO.
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
    public static long LinesWritten;

    /// <summary>The fd of the configured log file, or -1 while logging to stdout (the SIGSYS handler writes here too).</summary>
    public static int LogFd { get; private set; } = -1;

    /// <summary>Directs the log to a file or FIFO (opened for append, as Firecracker does). Allowed once.</summary>
    public static void Configure(string? path, LogLevel? level, bool? showLevel, bool? showOrigin)
    {
        lock (Lock)
        {
            if (_configured) throw new InvalidOperationException("Logger can only be configured once.");
            if (path != null)
            {
                var fs = new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.ReadWrite);
                _out = new StreamWriter(fs) { AutoFlush = true };
                LogFd = (int)fs.SafeFileHandle.DangerousGetHandle();
            }
            if (level.HasValue) Level = level.Value;
            if (showLevel.HasValue) ShowLevel = showLevel.Value;
            if (showOrigin.HasValue) ShowOrigin = showOrigin.Value;
            _configured = true;
        }
    }

    public static bool IsEnabled(LogLevel l) => l != LogLevel.Off && l <= Level;

    public static void Error(string m) => Log(LogLevel.Error, m);
    public static void Warn(string m) => Log(LogLevel.Warning, m);
    public static void Info(string m) => Log(LogLevel.Info, m);
    public static void Debug(string m) => Log(LogLevel.Debug, m);

    public static void Log(LogLevel level, string message)
    {
        if (!IsEnabled(level)) return;
        var now = DateTime.UtcNow;
        string thread = Thread.CurrentThread.Name ?? "main";
        string line = ShowLevel
            ? $"{now:yyyy-MM-ddTHH:mm:ss.fffffff}00 [{InstanceId}:{thread}:{LogLevels.Name(level)}] {message}"
            : $"{now:yyyy-MM-ddTHH:mm:ss.fffffff}00 [{InstanceId}:{thread}] {message}";
        lock (Lock)
        {
            try
            {
                _out.WriteLine(line);
                _out.Flush();
                LinesWritten++;
            }
            catch (IOException) { }
        }
    }
}
