namespace Flint.Vmm.Logging;

/// <summary>Firecracker's log levels, most to least severe; Off silences everything.</summary>
public enum LogLevel { Off = 0, Error = 1, Warning = 2, Info = 3, Debug = 4, Trace = 5 }

public static class LogLevels
{
    public static bool TryParse(string s, out LogLevel level)
    {
        switch (s.ToLowerInvariant())
        {
            case "off": level = LogLevel.Off; return true;
            case "error": level = LogLevel.Error; return true;
            case "warning": case "warn": level = LogLevel.Warning; return true;
            case "info": level = LogLevel.Info; return true;
            case "debug": level = LogLevel.Debug; return true;
            case "trace": level = LogLevel.Trace; return true;
            default: level = LogLevel.Info; return false;
        }
    }

    public static string Name(LogLevel l) => l switch
    {
        LogLevel.Error => "ERROR",
        LogLevel.Warning => "WARN",
        LogLevel.Info => "INFO",
        LogLevel.Debug => "DEBUG",
        LogLevel.Trace => "TRACE",
        _ => "OFF",
    };
}
