using Flint.Sys;

namespace Flint.UffdHandler;

/// <summary>
/// Serves a restored VM's page faults from the memory file: each missing page is copied in with UFFDIO_COPY from a
/// read-only mapping of the file, except a page that lies in one of the file's holes (a Full snapshot leaves zero and
/// never-touched pages as holes), which gets the kernel's zero page with UFFDIO_ZEROPAGE: nothing is read, copied or
/// allocated until the guest writes there. The balloon's madvise shows up as UFFD_EVENT_REMOVE: the range is unregistered, so
/// the guest's next touch there gets a zero page from the kernel, as a freshly inflated-then-deflated balloon expects
/// (Firecracker's example handler does the same). Nothing here allocates per fault.
/// </summary>
// SAFETY: copies pages from the mmapped file at offsets checked against each region's mapping before UFFDIO_COPY.
public sealed unsafe class PageServer(int uffd, RegionMapping[] regions, byte* file, FileHoles holes)
{
    /// <summary>Pages copied in from the file (UFFDIO_COPY succeeded).</summary>
    public long Served { get; private set; }
    /// <summary>Pages in a hole of the file, answered with the zero page (UFFDIO_ZEROPAGE succeeded).</summary>
    public long ZeroPages { get; private set; }
    /// <summary>Faults on pages already present (EEXIST: another fault on the same page won the race).</summary>
    public long AlreadyPresent { get; private set; }
    /// <summary>Pages the balloon removed (UFFD_EVENT_REMOVE ranges, unregistered).</summary>
    public long Removed { get; private set; }
    /// <summary>
    /// Faults read after their page left userfaultfd's care (ENOENT: a remove unregistered it, or the VMM unmapped it,
    /// once the fault was queued). Unregistering woke the faulting thread; its retry gets the kernel's page.
    /// </summary>
    public long NoLongerRegistered { get; private set; }

    /// <summary>Set when a fault cannot be served: the VMM's guest would wait forever on it.</summary>
    public string? Fatal { get; private set; }

    // A fault whose UFFDIO_COPY answered EAGAIN (a remove is pending, it must be read first) is retried after the events.
    private readonly ulong[] _deferred = new ulong[256];
    private int _deferredCount;
    // Cleared once UFFDIO_ZEROPAGE answers EINVAL (hugetlbfs has no zero page): holes are copied from the file then.
    private bool _zeroPageWorks = true;

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

    /// <summary>Answers the fault at <paramref name="addr"/>: the zero page for a hole of the file, else a copy from it.</summary>
    internal bool Serve(ulong addr)
    {
        foreach (var region in regions)
        {
            if (!region.Contains(addr)) continue;
            ulong page = addr & ~(region.PageSize - 1);
            ulong offset = region.Offset + (page - region.Base);
            long r = 0;
            bool zero = _zeroPageWorks && holes.IsHole(offset, region.PageSize);
            if (zero)
            {
                r = Userfaultfd.ZeroPage(uffd, page, region.PageSize);
                if (r == -UffdAbi.EINVAL)
                {
                    _zeroPageWorks = false;
                    zero = false;
                }
            }
            if (!zero)
            {
                // SAFETY: page lies in the region (Contains, and Base is page aligned), so file + offset plus PageSize
                // stays inside the file's mapping: RegionMapping.Parse checked Offset + Size <= file size.
                r = Userfaultfd.Copy(uffd, page, file + offset, region.PageSize);
            }
            if (r == (long)region.PageSize)
            {
                if (zero) ZeroPages++;
                else Served++;
                return true;
            }
            if (r == -UffdAbi.EEXIST)
            {
                AlreadyPresent++;
                Userfaultfd.Wake(uffd, page, region.PageSize);
                return true;
            }
            if (r == -Libc.ENOENT)
            {
                // madvise(DONTNEED) returns once its remove event is read, not once it is handled: the guest may touch
                // the page again, and queue this fault, before the range is unregistered above. Nothing to serve;
                // the unregister woke the faulting thread, and a wake for the page costs nothing if it did.
                NoLongerRegistered++;
                Userfaultfd.Wake(uffd, page, region.PageSize);
                return true;
            }
            if (r == -Libc.EAGAIN || r >= 0)
            {
                if (_deferredCount == _deferred.Length) { Fatal = "too many deferred faults"; return false; }
                _deferred[_deferredCount++] = addr;
                return true;
            }
            Fatal = $"{(zero ? "UFFDIO_ZEROPAGE" : "UFFDIO_COPY")} of 0x{page:x} failed: {Libc.StrError((int)-r)}";
            return false;
        }
        Fatal = $"a fault at 0x{addr:x} lies in no region of the mappings";
        return false;
    }
}
