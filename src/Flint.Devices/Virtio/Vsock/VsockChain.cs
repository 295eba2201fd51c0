using Flint.Memory;
using Flint.Sys;

namespace Flint.Devices.Virtio.Vsock;

/// <summary>
/// The one place vsock touches guest buffers: a descriptor chain (already copied out of the guest's table and
/// checked for direction) seen as one byte stream. Everything else in the vsock code reads and writes packets
/// through this, so swapping it for the shared descriptor-chain Reader/Writer later is a change here only.
/// Unmapped ranges stop a copy (reads clear the destination) rather than throw: the guest controls the addresses.
/// </summary>
internal readonly unsafe ref struct VsockChain
{
    private readonly GuestMemory _mem;
    private readonly ReadOnlySpan<Descriptor> _d;

    public VsockChain(GuestMemory mem, ReadOnlySpan<Descriptor> descriptors, ulong length)
    {
        _mem = mem;
        _d = descriptors;
        Length = length;
    }

    /// <summary>Bytes the chain holds (sum of its descriptor lengths).</summary>
    public ulong Length { get; }

    /// <summary>Descriptors in the chain: the most iovecs any range of it needs.</summary>
    public int Segments => _d.Length;

    /// <summary>Copies [offset, offset+dst.Length) out of guest memory; false (dst cleared) when part of it is not guest RAM.</summary>
    public bool CopyOut(ulong offset, Span<byte> dst)
    {
        var whole = dst;
        foreach (ref readonly var x in _d)
        {
            if (dst.IsEmpty) return true;
            if (offset >= x.Len) { offset -= x.Len; continue; }
            int take = (int)Math.Min(x.Len - offset, (ulong)dst.Length);
            byte* p = _mem.TryGetHostPointer(x.Addr + offset, (ulong)take);
            if (p == null) { whole.Clear(); return false; }
            // SAFETY: p points at `take` bytes of mapped guest RAM (TryGetHostPointer checked the whole range).
            new ReadOnlySpan<byte>(p, take).CopyTo(dst);
            dst = dst[take..];
            offset = 0;
        }
        if (dst.IsEmpty) return true;
        whole.Clear();
        return false;
    }

    /// <summary>Copies <paramref name="src"/> into the chain at <paramref name="offset"/>; stops at the first unmapped range.</summary>
    public void CopyIn(ulong offset, ReadOnlySpan<byte> src)
    {
        foreach (ref readonly var x in _d)
        {
            if (src.IsEmpty) return;
            if (offset >= x.Len) { offset -= x.Len; continue; }
            int take = (int)Math.Min(x.Len - offset, (ulong)src.Length);
            byte* p = _mem.TryGetHostPointer(x.Addr + offset, (ulong)take);
            if (p == null) return;
            // SAFETY: p points at `take` bytes of mapped guest RAM (TryGetHostPointer checked the whole range).
            src[..take].CopyTo(new Span<byte>(p, take));
            src = src[take..];
            offset = 0;
        }
    }

    /// <summary>
    /// iovecs over [offset, offset+len) of the chain, at most <see cref="Segments"/> of them; returns how many were
    /// filled. A range that runs into unmapped memory ends early, so the iovecs may cover less than len.
    /// </summary>
    public int BuildIov(ulong offset, uint len, IoVec* iov)
    {
        int n = 0;
        foreach (ref readonly var x in _d)
        {
            if (len == 0) break;
            if (offset >= x.Len) { offset -= x.Len; continue; }
            uint take = (uint)Math.Min(x.Len - offset, len);
            byte* p = _mem.TryGetHostPointer(x.Addr + offset, take);
            if (p == null) break;
            iov[n].Base = p;
            iov[n].Len = take;
            n++;
            len -= take;
            offset = 0;
        }
        return n;
    }
}
