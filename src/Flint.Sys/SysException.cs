namespace Flint.Sys;

/// <summary>A failed system call: carries the operation's name and errno so the log says what failed and why.</summary>
public class SysException : Exception
{
    public string Operation { get; }
    public int Errno { get; }

    public SysException(string operation, int errno)
        : base($"{operation} failed: {Libc.StrError(errno)} (errno {errno})")
    {
        Operation = operation;
        Errno = errno;
    }

    /// <summary>The same message followed by <paramref name="hint"/>: what the user can do about it (empty: nothing added).</summary>
    public SysException(string operation, int errno, string hint)
        : base($"{operation} failed: {Libc.StrError(errno)} (errno {errno})" + (hint.Length > 0 ? ": " + hint : ""))
    {
        Operation = operation;
        Errno = errno;
    }

    /// <summary>Throws with the calling thread's last P/Invoke errno.</summary>
    public static SysException Last(string operation) => new(operation, Libc.Errno);
}
