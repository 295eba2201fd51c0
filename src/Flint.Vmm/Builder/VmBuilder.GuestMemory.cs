using Flint.Arch.X86;
using Flint.Memory;
using Flint.Vmm.Config;

namespace Flint.Vmm.Builder;

public static partial class VmBuilder
{
    /// <summary>
    /// Step: guest RAM. A restore brings its own (mapped from the memory file or served by a uffd handler); a boot
    /// allocates the layout's RAM ranges. Dirty tracking starts before the kernel is loaded, so a booted VM's first
    /// Diff snapshot holds everything it needs to load. A vhost-user drive needs RAM the backend can map (memfd).
    /// </summary>
    internal static GuestMemory CreateGuestMemory(VmConfig config, MachineConfig mc, ulong memBytes, GuestMemory? restored, List<IDisposable> owned)
    {
        var memory = restored
            ?? GuestMemorySize.Allocate(mc.MemSizeMib, () => AllocateGuestRam(config, MemoryLayout.RamRanges(memBytes), ConfigLoader.HugePagesOf(mc)));
        owned.Add(memory);
        if (mc.TrackDirtyPages) memory.EnableDirtyTracking();
        return memory;
    }

    /// <summary>Step: the kernel image, and the initrd above its footprint, into guest memory (boots only).</summary>
    internal static LoadedKernel LoadKernel(GuestMemory memory, BootSourceConfig boot, out (ulong Address, ulong Size)? initrd)
    {
        var kernel = KernelLoader.Load(memory, boot.KernelImagePath);
        initrd = boot.InitrdPath is { } ip ? InitrdLoader.Load(memory, ip, kernel.End) : null;
        return kernel;
    }
}
