namespace Flint.Vmm.Snapshot;

/// <summary>
/// A snapshot file's I/O failure as the OS words it ("No such file or directory (os error 2)", Rust's io::Error text
/// that Firecracker's snapshot errors carry), never .NET's exception text (which NativeAOT reduces to resource keys).
/// </summary>
internal static class IoText
{
    public static string Of(Exception e, string? path = null) => e switch
    {
        UnauthorizedAccessException when path != null && Directory.Exists(path) => "Is a directory (os error 21)",
        FileNotFoundException or DirectoryNotFoundException => "No such file or directory (os error 2)",
        UnauthorizedAccessException => "Permission denied (os error 13)",
        PathTooLongException => "File name too long (os error 36)",
        // On Linux, a failed syscall's IOException carries errno as HResult and strerror as its message.
        IOException { HResult: > 0 and < 4096 } io => $"{io.Message} (os error {io.HResult})",
        Flint.Memory.GuestMemoryFileException or Flint.Sys.SysException => e.Message,
        _ => "Input/output error (os error 5)",
    };
}
