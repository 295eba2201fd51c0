namespace Flint.Vmm;

/// <summary>
/// An I/O failure as the OS words it ("No such file or directory (os error 2)", Rust's io::Error text, which
/// Firecracker's messages carry and its tests match), never .NET's exception text.
/// </summary>
public static class IoErrorText
{
    /// <param name="path">The file that failed, when known: .NET reports reading a directory as access denied.</param>
    public static string Of(Exception e, string? path = null) => e switch
    {
        Flint.Sys.SysException s => $"{Flint.Sys.Libc.StrError(s.Errno)} (os error {s.Errno})",
        UnauthorizedAccessException when path != null && Directory.Exists(path) => "Is a directory (os error 21)",
        FileNotFoundException or DirectoryNotFoundException => "No such file or directory (os error 2)",
        UnauthorizedAccessException => "Permission denied (os error 13)",
        PathTooLongException => "File name too long (os error 36)",
        // Flint's own I/O code already words its failures so (NonBlockingFile): keep them.
        IOException io when io.GetType() == typeof(IOException) && io.Message.Contains(" (os error ", StringComparison.Ordinal) => io.Message,
        // On Linux, .NET's IOException for a failed syscall carries errno as its HResult and strerror as its message.
        IOException { HResult: > 0 and < 4096 } io => $"{io.Message} (os error {io.HResult})",
        _ => "Input/output error (os error 5)",
    };
}
