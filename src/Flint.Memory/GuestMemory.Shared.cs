using System.Text;
using Flint.Sys;

namespace Flint.Memory;

// SAFETY: each region is a MAP_SHARED mapping of its own range of the memfd, with the layout's size, unmapped once in Dispose.
public sealed unsafe partial class GuestMemory
{
    /// <summary>
    /// Guest RAM in one memfd, each region a MAP_SHARED window of it (Firecracker's memfd_backed): the layout a
    /// vhost-user backend needs, since it maps guest RAM itself from the fds in SET_MEM_TABLE. Used only when a
    /// vhost-user device exists, because page faults on shared mappings cost more than on private anonymous memory.
    /// The memfd stays open for the VM's life (a device may activate, and send it, any time).
    /// </summary>
    public static GuestMemory CreateShared(IEnumerable<(ulong GuestBase, ulong Size)> ranges)
    {
        var sorted = ranges.OrderBy(r => r.GuestBase).ToArray();
        ulong total = 0, prevEnd = 0;
        foreach (var (gb, size) in sorted)
        {
            if (size == 0 || gb % PageSize != 0 || size % PageSize != 0)
                throw new ArgumentException($"region 0x{gb:x}+0x{size:x} is not page aligned");
            if (gb < prevEnd) throw new ArgumentException($"region 0x{gb:x} overlaps the previous one");
            prevEnd = gb + size;
            total += size;
        }
        var memfd = new MemFd("guest_mem", total);
        var list = new List<GuestRegion>();
        try
        {
            ulong offset = 0;
            foreach (var (gb, size) in sorted)
            {
                void* p = Libc.mmap(null, (nuint)size, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_SHARED | Libc.MAP_NORESERVE, memfd.Fd, (long)offset);
                if ((nint)p == Libc.MAP_FAILED) throw SysException.Last($"mmap shared guest memory ({size >> 20} MiB)");
                Libc.madvise(p, (nuint)size, Libc.MADV_DONTDUMP);
                list.Add(new GuestRegion(gb, size, (byte*)p) { SharedFd = memfd.Fd, SharedFdOffset = offset });
                offset += size;
            }
        }
        catch
        {
            foreach (var r in list) Libc.munmap(r.Host, (nuint)r.Size);
            memfd.Dispose();
            throw;
        }
        return new GuestMemory(list.ToArray()) { _backing = memfd, _shared = true };
    }

    /// <summary>True for <see cref="CreateShared"/> memory: discarding pages must punch them out of the memfd.</summary>
    private bool _shared;

    /// <summary>Whether every region can be handed to another process (vhost-user) by fd.</summary>
    public bool IsShared => _shared;

    /// <summary>An anonymous memory file sized for guest RAM; closed with the memory.</summary>
    private sealed class MemFd : IDisposable
    {
        public int Fd { get; private set; }

        public MemFd(string name, ulong size)
        {
            byte[] n = Encoding.ASCII.GetBytes(name + "\0");
            // SAFETY: n is a NUL-terminated buffer pinned for the call.
            fixed (byte* p = n) Fd = Libc.memfd_create(p, Libc.MFD_CLOEXEC);
            if (Fd < 0) throw SysException.Last("memfd_create(guest_mem)");
            if (Libc.ftruncate(Fd, (long)size) < 0)
            {
                var e = SysException.Last($"ftruncate guest memory memfd ({size >> 20} MiB)");
                Libc.close(Fd);
                throw e;
            }
        }

        public void Dispose()
        {
            if (Fd >= 0) Libc.close(Fd);
            Fd = -1;
        }
    }
}
