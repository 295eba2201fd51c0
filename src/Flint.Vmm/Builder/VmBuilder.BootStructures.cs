using Flint.Arch.X86;
using Flint.Memory;
using Flint.Vmm.Config;

namespace Flint.Vmm.Builder;

public static partial class VmBuilder
{
    /// <summary>
    /// Step: the kernel command line the devices extend, starting from boot_args (or Firecracker's default) and the
    /// CPU template's additions.
    /// </summary>
    internal static KernelCmdline BaseKernelCmdline(BootSourceConfig boot, ICpuTemplate template)
    {
        var cmdline = new KernelCmdline();
        cmdline.Append(boot.BootArgs ?? KernelCmdline.DefaultBootArgs);
        if (template.ExtraKernelCmdline is { Length: > 0 } extra) cmdline.Append(extra);
        return cmdline;
    }

    /// <summary>
    /// Step (boots only): the command line (NUL-terminated <paramref name="cmdBytes"/>), the zero page with the e820
    /// map and initrd, and the MP table for <paramref name="vcpuCount"/> vCPUs, in guest memory.
    /// </summary>
    internal static void WriteBootStructures(GuestMemory memory, LoadedKernel kernel, byte[] cmdBytes,
        (ulong Address, ulong Size)? initrd, ulong memBytes, uint vcpuCount)
    {
        memory.Write(Layout.CmdlineStart, cmdBytes);
        BootParams.Write(memory, kernel, Layout.CmdlineStart, cmdBytes.Length - 1, initrd, memBytes);
        MpTable.Write(memory, vcpuCount);
    }
}
