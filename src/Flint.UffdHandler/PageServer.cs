using Flint.Sys;

namespace Flint.UffdHandler;

/// <summary>
/// Serves a restored VM's page faults from the memory file: each missing page is copied in with UFFDIO_COPY from a
/// read-only mapping of the file. The balloon's madvise shows up as UFFD_EVENT_REMOVE: the range is unregistered, so
/// the guest's next touch there gets a zero page from the kernel, as a freshly inflated-then-deflated balloon expects
/// (Firecracker's example handler does the same). Nothing here allocates per fault.
/// </summary>
// SAFETY: copies pages from the mmapped file at offsets checked against each region's mapping before UFFDIO_COPY.
public sealed unsafe class PageServer(int uffd, RegionMapping[] regions, byte* file)
{
    /// <summary>Pages copied in (UFFDIO_COPY succeeded).</summary>
    public long Served { get; private set; }
    /// <summary>Faults on pages already present (EEXIST: another fault on the same page won the race).</summary>
    public long AlreadyPresent { get; private set; }
    /// <summary>Pages the balloon removed (UFFD_EVENT_REMOVE ranges, unregistered).</summary>
    public long Removed { get; private set; }

    /// <summary>Set when a fault cannot be served: the VMM's guest would wait forever on it.</summary>
    public string? Fatal { get; private set; }

    // A fault whose UFFDIO_COPY answered EAGAIN (a remove is pending, it must be read first) is retried after the events.
    private readonly ulong[] _deferred = new ulong[256];
    private int _deferredCount;

    /// <summary>Reads and serves every pending event; false once a fault could not be served (see <see cref="Fatal"/>).</summary>
    public bool Drain()
    {
        for (int round = 0; ; round++)
        {
            int r;
            while ((r = Userfaultfd.ReadEvent(uffd, out var msg)) == 1)
            {
                switch (msg.Event)
                {
                    case UffdAbi.EventPagefault:
                        if (!Serve(msg.Arg1)) return false;
                        break;
                    case UffdAbi.EventRemove:
                        // [start, end) is page aligned by madvise; unregistered, it is ordinary anonymous memory again.
                        if (msg.Arg1 > msg.Arg0)
                        {
                            Userfaultfd.Unregister(uffd, msg.Arg0, msg.Arg1 - msg.Arg0);
                            Removed += (long)((msg.Arg1 - msg.Arg0) / 4096);
                        }
                        break;
                    default:
                        break; // fork, remap and unmap were not asked for: nothing to do
                }
            }
            if (r < 0) { Fatal = $"reading the userfaultfd failed: {Libc.StrError(-r)}"; return false; }
            if (_deferredCount == 0) return true;
            if (round > 1000) { Fatal = "a page copy kept answering EAGAIN"; return false; }
            int n = _deferredCount;
            _deferredCount = 0;
            for (int i = 0; i < n; i++)
                if (!Serve(_deferred[i])) return false;
        }
    }

    /// <summary>Copies the page holding <paramref name="addr"/> in from the file.</summary>
    private bool Serve(ulong addr)
    {
        foreach (var region in regions)
        {
            if (!region.Contains(addr)) continue;
            ulong page = addr & ~(region.PageSize - 1);
            // SAFETY: page lies in the region (Contains, and Base is page aligned), so file + Offset + (page - Base)
            // plus PageSize stays inside the file's mapping: RegionMapping.Parse checked Offset + Size <= file size.
            long r = Userfaultfd.Copy(uffd, page, file + region.Offset + (page - region.Base), region.PageSize);
            if (r == (long)region.PageSize) { Served++; return true; }
            if (r == -UffdAbi.EEXIST)
            {
                AlreadyPresent++;
                Userfaultfd.Wake(uffd, page, region.PageSize);
                return true;
            }
            if (r == -Libc.EAGAIN || r >= 0)
            {
                if (_deferredCount == _deferred.Length) { Fatal = "too many deferred faults"; return false; }
                _deferred[_deferredCount++] = addr;
                return true;
            }
            Fatal = $"UFFDIO_COPY of 0x{page:x} failed: {Libc.StrError((int)-r)}";
            return false;
        }
        Fatal = $"a fault at 0x{addr:x} lies in no region of the mappings";
        return false;
    }
}
