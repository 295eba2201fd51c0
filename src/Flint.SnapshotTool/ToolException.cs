using Flint.Sys;

namespace Flint.SnapshotTool;

/// <summary>A failure the tool reports as one line on stderr, with its exit code; never .NET's own text.</summary>
public sealed class ToolException(string message, int exitCode = ExitCodes.Failure) : Exception(message)
{
    public int ExitCode { get; } = exitCode;

    /// <summary>"what: OS text (os error N)", as Rust's io::Error prints (snapshot-editor's messages carry it).</summary>
    public static ToolException Os(string what, int errno) => new($"{what}: {Libc.StrError(errno)} (os error {errno})");
}

/// <summary>As snapshot-editor (a Rust main returning Err, clap for arguments): 0 ok, 1 failed, 2 bad arguments.</summary>
public static class ExitCodes
{
    public const int Ok = 0, Failure = 1, Usage = 2;
}
