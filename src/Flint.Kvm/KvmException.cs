using Flint.Sys;

namespace Flint.Kvm;

/// <summary>A failed KVM ioctl; the message names the ioctl and the errno so a log line is enough to debug it.</summary>
public sealed class KvmException : SysException
{
    public KvmException(string ioctl, int errno) : base(ioctl, errno) { }

    /// <summary>With a hint that says what the user can do about it (empty: none).</summary>
    public KvmException(string operation, int errno, string hint) : base(operation, errno, hint) { }

    internal static new KvmException Last(string ioctl) => new(ioctl, Libc.Errno);
}
