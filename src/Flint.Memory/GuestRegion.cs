namespace Flint.Memory;

/// <summary>One contiguous block of guest RAM: its guest-physical base, size and host mapping.</summary>
// SAFETY: Host is an mmap of Size bytes owned by GuestMemory, unmapped only in its Dispose; offsets are checked against Size.
public sealed unsafe class GuestRegion
{
    public ulong GuestBase { get; }
    public ulong Size { get; }
    public byte* Host { get; }
    public ulong GuestEnd => GuestBase + Size;

    /// <summary>The pages the VMM wrote in this region since the last snapshot; null while dirty tracking is off.</summary>
    public DirtyPageBitmap? Dirty { get; internal set; }

    /// <summary>
    /// The shared file this region maps (the memfd of <see cref="GuestMemory.CreateShared"/>) and where in it, so a
    /// vhost-user backend can map the same pages; -1 for private memory, which no other process can share.
    /// </summary>
    public int SharedFd { get; internal set; } = -1;
    public ulong SharedFdOffset { get; internal set; }

    internal GuestRegion(ulong guestBase, ulong size, byte* host)
    {
        GuestBase = guestBase;
        Size = size;
        Host = host;
    }

    public bool Contains(ulong gpa) => gpa >= GuestBase && gpa - GuestBase < Size;
}
