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

    /// <summary>Throws with the calling thread's last P/Invoke errno.</summary>
    public static SysException Last(string operation) => new(operation, Libc.Errno);
}
