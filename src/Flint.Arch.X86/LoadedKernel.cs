namespace Flint.Arch.X86;

/// <summary>How the kernel is entered; decides the boot structures and the vCPU mode.</summary>
public enum KernelKind
{
    /// <summary>ELF vmlinux with a XEN_ELFNOTE_PHYS32_ENTRY note: 32-bit protected mode, ebx = hvm_start_info.</summary>
    Pvh,
    /// <summary>ELF vmlinux without the PVH note: Linux 64-bit boot protocol, rsi = zero page.</summary>
    Elf64Linux,
    /// <summary>bzImage: 64-bit boot protocol at load address + 0x200, zero page built from its setup header.</summary>
    BzImage,
}

/// <summary>
/// The result of loading a kernel into guest memory.
/// </summary>
/// <param name="Kind">Boot protocol to use.</param>
/// <param name="Entry">Guest-physical entry point (rip of the boot vCPU).</param>
/// <param name="LoadAddress">Lowest guest-physical address written.</param>
/// <param name="End">
/// First address past the kernel's footprint (for a bzImage this includes the room it needs to decompress,
/// setup_header.init_size); the initrd must start at or above it.
/// </param>
/// <param name="SetupHeader">bzImage only: the setup header bytes from file offset 0x1f1, copied into the zero page.</param>
public sealed record LoadedKernel(KernelKind Kind, ulong Entry, ulong LoadAddress, ulong End, byte[]? SetupHeader = null);
