namespace Flint.Client.Models;

/// <summary>PUT /boot-source: the guest kernel (swagger <c>BootSource</c>). Pre-boot only.</summary>
public sealed record BootSource
{
    /// <summary>Host path of the kernel image.</summary>
    public string KernelImagePath { get; init; } = "";

    /// <summary>Kernel command line; the VMM's default when absent.</summary>
    public string? BootArgs { get; init; }

    /// <summary>Host path of an initrd, if any.</summary>
    public string? InitrdPath { get; init; }
}
