using Flint.Memory;

namespace Flint.Arch.X86;

/// <summary>Writes the boot information the kernel's entry protocol expects: PVH start_info or the Linux zero page.</summary>
public static class BootParams
{
    /// <summary>
    /// Writes start_info (Pvh) or the zero page (Elf64Linux, BzImage). <paramref name="cmdlineLen"/> is the
    /// command line's length in bytes without its NUL. Returns the guest address to hand the kernel
    /// (ebx for PVH, rsi for the 64-bit protocol); <see cref="BootCpuState.Regs"/> uses the same constants.
    /// </summary>
    public static ulong Write(GuestMemory mem, LoadedKernel kernel, ulong cmdlineAddr, int cmdlineLen,
        (ulong Address, ulong Size)? initrd, ulong memBytes)
    {
        ArgumentNullException.ThrowIfNull(mem);
        ArgumentNullException.ThrowIfNull(kernel);
        if (cmdlineLen < 0 || cmdlineLen >= Layout.CmdlineMaxSize)
            throw new ArgumentOutOfRangeException(nameof(cmdlineLen), $"command line length {cmdlineLen} outside 0..{Layout.CmdlineMaxSize - 1}");
        if (kernel.Kind == KernelKind.Pvh)
            return PvhStartInfo.Write(mem, cmdlineAddr, initrd, memBytes);
        ZeroPage.Write(mem, kernel, cmdlineAddr, cmdlineLen, initrd, memBytes);
        return Layout.ZeroPageStart;
    }
}
