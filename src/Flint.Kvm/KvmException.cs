using Flint.Sys;

namespace Flint.Kvm;

/// <summary>A failed KVM ioctl; the message names the ioctl and the errno so a log line is enough to debug it.</summary>
public sealed class KvmException : SysException
{
    public KvmException(string ioctl, int errno) : base(ioctl, errno) { }

    internal static new KvmException Last(string ioctl) => new(ioctl, Libc.Errno);
}
