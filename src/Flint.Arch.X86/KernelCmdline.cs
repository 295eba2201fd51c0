using System.Text;
using Flint.Memory;

namespace Flint.Arch.X86;

/// <summary>A kernel command line over its 2048-byte limit (NUL included) or holding a NUL byte.</summary>
public sealed class KernelCmdlineException(string message) : Exception(message);

/// <summary>
/// Builds the kernel command line: space-separated arguments, checked against the x86 limit of 2048 bytes
/// including the terminating NUL on every append, so the error names the argument that overflowed.
/// </summary>
public sealed class KernelCmdline
{
    /// <summary>Firecracker's command line when boot_args is absent: no serial console, fast reboot/panic paths.</summary>
    public const string DefaultBootArgs =
        "reboot=k panic=1 nomodule 8250.nr_uarts=0 i8042.noaux i8042.nomux i8042.dumbkbd swiotlb=noforce";

    public const int MaxSize = Layout.CmdlineMaxSize;

    private readonly StringBuilder _sb = new();
    private int _bytes;

    public KernelCmdline() { }

    public KernelCmdline(string initial) => Append(initial);

    /// <summary>A command line from the user's boot_args, or <see cref="DefaultBootArgs"/> when they gave none.</summary>
    public static KernelCmdline FromBootArgs(string? bootArgs) => new(bootArgs ?? DefaultBootArgs);

    /// <summary>Length in bytes (UTF-8), without the NUL.</summary>
    public int Length => _bytes;

    /// <summary>Appends <paramref name="args"/> (trimmed; empty is a no-op) after a separating space.</summary>
    public KernelCmdline Append(string args)
    {
        ArgumentNullException.ThrowIfNull(args);
        args = args.Trim();
        if (args.Length == 0) return this;
        if (args.Contains('\0')) throw new KernelCmdlineException("kernel command line must not contain a NUL byte");
        int add = Encoding.UTF8.GetByteCount(args) + (_bytes > 0 ? 1 : 0);
        if (_bytes + add + 1 > MaxSize)
            throw new KernelCmdlineException(
                $"kernel command line too long: appending '{Shorten(args)}' makes it {_bytes + add} bytes, the limit is {MaxSize - 1} plus the NUL");
        if (_bytes > 0) _sb.Append(' ');
        _sb.Append(args);
        _bytes += add;
        return this;
    }

    /// <summary>Announces a virtio-mmio device the way the kernel's virtio_mmio driver parses it.</summary>
    public KernelCmdline AppendVirtioMmioDevice(ulong address, uint irq) =>
        Append(VirtioMmioDeviceArg(address, irq));

    public static string VirtioMmioDeviceArg(ulong address, uint irq) => $"virtio_mmio.device=4K@0x{address:x}:{irq}";

    public override string ToString() => _sb.ToString();

    /// <summary>The bytes the kernel reads, NUL included.</summary>
    public byte[] ToBytes()
    {
        var b = new byte[_bytes + 1];
        Encoding.UTF8.GetBytes(_sb.ToString(), b);
        return b;
    }

    /// <summary>Writes the NUL-terminated line at <paramref name="address"/>; returns its length without the NUL.</summary>
    public int WriteTo(GuestMemory mem, ulong address = Layout.CmdlineStart)
    {
        mem.Write(address, ToBytes());
        return _bytes;
    }

    private static string Shorten(string s) => s.Length <= 40 ? s : s[..37] + "...";
}
