namespace Flint.Client.Models;

/// <summary>PUT /logger: where and what the VMM logs (swagger <c>Logger</c>).</summary>
public sealed record Logger
{
    /// <summary>Error, Warning, Info (default), Debug, Trace or Off, case-insensitive (see <see cref="LogLevels"/>).</summary>
    public string? Level { get; init; }

    /// <summary>Named pipe or file for the human-readable log.</summary>
    public string? LogPath { get; init; }

    /// <summary>Whether each line shows its level.</summary>
    public bool? ShowLevel { get; init; }

    /// <summary>Whether each line shows its source file and line.</summary>
    public bool? ShowLogOrigin { get; init; }

    /// <summary>Only log messages from this module path.</summary>
    public string? Module { get; init; }
}

/// <summary>Values of <see cref="Logger.Level"/>.</summary>
public static class LogLevels
{
    /// <summary>Errors only.</summary>
    public const string Error = "Error";

    /// <summary>Warnings and errors.</summary>
    public const string Warning = "Warning";

    /// <summary>The default.</summary>
    public const string Info = "Info";

    /// <summary>Debug and above.</summary>
    public const string Debug = "Debug";

    /// <summary>Everything.</summary>
    public const string Trace = "Trace";

    /// <summary>Nothing.</summary>
    public const string Off = "Off";
}
