using System.Text;

namespace Flint.Api;

/// <summary>
/// Checks an --api-sock path before anything is created, so an operator's mistake gets its own message and leaves
/// nothing behind: an empty path, one too long for sockaddr_un, one in a directory that does not exist, or one that
/// names something that already exists (refused, never deleted: it may be someone's file, or a live socket).
/// </summary>
public static class ApiSocketPath
{
    /// <summary>sun_path holds 108 bytes with the terminating NUL.</summary>
    public const int MaxBytes = 107;

    /// <summary>Throws <see cref="ApiSocketException"/> when <paramref name="path"/> cannot become the API socket.</summary>
    public static void Check(string path)
    {
        if (path.Length == 0)
            throw ApiSocketException.BindFailed("the API socket path is empty");
        if (path.Contains('\0'))
            throw ApiSocketException.BindFailed("paths must not contain interior null bytes");
        int bytes = Encoding.UTF8.GetByteCount(path);
        if (bytes > MaxBytes)
            throw ApiSocketException.BindFailed($"path must be shorter than SUN_LEN ({path} is {bytes} bytes; a Unix socket path holds at most {MaxBytes})");
        if (Exists(path))
            throw ApiSocketException.InUse(path);
        string dir = Path.GetDirectoryName(Path.GetFullPath(path)) ?? "/";
        if (!Directory.Exists(dir))
            throw ApiSocketException.BindFailed(File.Exists(dir)
                ? $"Not a directory (os error 20): {dir} is not a directory"
                : $"No such file or directory (os error 2): the directory {dir} does not exist");
    }

    /// <summary>Anything at the path, a dangling symbolic link included (bind would fail on it with EADDRINUSE).</summary>
    public static bool Exists(string path) =>
        File.Exists(path) || Directory.Exists(path) || new FileInfo(path).LinkTarget != null;
}
