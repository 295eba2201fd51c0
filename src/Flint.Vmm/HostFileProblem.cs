namespace Flint.Vmm;

/// <summary>
/// Why a host file the user named (kernel, initrd, drive) cannot be opened, in words the user can act on. Used
/// instead of .NET's exception text, which for a directory said "Access to the path ... is denied".
/// </summary>
internal static class HostFileProblem
{
    /// <summary>
    /// For a path that is a directory: the OS's words for it (Rust's io::Error: "Is a directory (os error 21)"; .NET
    /// reports "access denied" instead) and the advice to append, so the Firecracker-shaped message also says what to
    /// do. Null when the path is not a directory.
    /// </summary>
    /// <summary>
    /// Whether <paramref name="path"/> is a directory, by an open(O_DIRECTORY) that only a directory survives, not by
    /// stat(2): after the start this runs on the VMM thread (PCI hotplug, PATCH /drives), whose seccomp filter traps
    /// stat, so Directory.Exists there would stop the VM on a client's bad path.
    /// </summary>
    private static bool IsDirectory(string path)
    {
        const int ODirectory = 0x10000; // O_DIRECTORY on x86-64
        int fd = Flint.Sys.Libc.Open(path, Flint.Sys.Libc.O_RDONLY | ODirectory | Flint.Sys.Libc.O_CLOEXEC);
        if (fd < 0) return false;
        Flint.Sys.Libc.close(fd);
        return true;
    }

    public static (string OsError, string Advice)? Directory(string path, bool drive) =>
        IsDirectory(path)
            ? ("Is a directory (os error 21)", $"{path} is a directory: " + (drive ? "a drive needs a disk image file or a block device" : "give the path of a file"))
            : null;

    /// <param name="what">The file's role, as the caller's message names it; a drive's ("block device", "drive ...")
    /// gets the drive-specific advice.</param>
    public static string Describe(string path, Exception e, bool write, string what)
    {
        bool drive = what.Contains("drive", StringComparison.Ordinal) || what.Contains("block device", StringComparison.Ordinal);
        if (IsDirectory(path))
            return $"{path} is a directory: " + (drive ? "a drive needs a disk image file or a block device" : "give the path of a file");
        return e switch
        {
            FileNotFoundException or DirectoryNotFoundException => "No such file or directory: check the path (under the jailer, paths are inside the jail)",
            UnauthorizedAccessException when write =>
                "Permission denied: the user running flint cannot open it for reading and writing (set is_read_only to open it read-only)",
            UnauthorizedAccessException => "Permission denied: the user running flint cannot read it",
            PathTooLongException => "the path is too long",
            ArgumentException => "the path is not valid",
            _ => "the file cannot be opened (I/O error)",
        };
    }
}
