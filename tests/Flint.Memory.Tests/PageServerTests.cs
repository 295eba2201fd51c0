using Flint.Sys;
using Flint.UffdHandler;

namespace Flint.Memory.Tests;

/// <summary>
/// flint-uffd-handler's page server against a real userfaultfd, in process: the cases a running VMM reaches only by a
/// race, set up here on purpose.
/// </summary>
[Collection(UffdCollection.Name)]
public sealed unsafe class PageServerTests : IDisposable
{
    private const ulong P = 4096;
    private readonly int _uffd;
    private readonly byte* _page;
    private readonly byte[] _file = new byte[P];

    public PageServerTests()
    {
        _uffd = Userfaultfd.Open(Libc.O_CLOEXEC | Libc.O_NONBLOCK, UffdSource.SyscallThenDevice);
        Userfaultfd.Handshake(_uffd, UffdAbi.FeatureEventRemove);
        // SAFETY: one private anonymous page, unmapped in Dispose; nothing touches it while the test runs.
        _page = (byte*)Libc.mmap(null, (nuint)P, Libc.PROT_READ | Libc.PROT_WRITE, Libc.MAP_PRIVATE | Libc.MAP_ANONYMOUS, -1, 0);
        Assert.NotEqual(Libc.MAP_FAILED, (nint)_page);
        _file.AsSpan().Fill(0x5a);
    }

    public void Dispose()
    {
        Libc.munmap(_page, (nuint)P);
        Libc.close(_uffd);
    }

    [Fact]
    public void A_fault_on_a_page_a_remove_already_unregistered_is_not_fatal()
    {
        // The race the hotplug uffd test hit about once in ten runs: madvise(DONTNEED) returns once its remove event
        // is read, the guest touches the page again and queues a fault, the handler then unregisters the range and
        // reads that fault: UFFDIO_COPY answers ENOENT. The handler used to call that fatal and SIGKILL the VMM.
        Userfaultfd.Register(_uffd, (ulong)_page, P);
        Assert.Equal(0, Userfaultfd.Unregister(_uffd, (ulong)_page, P));
        fixed (byte* file = _file)
        {
            var server = new PageServer(_uffd, [new RegionMapping((ulong)_page, P, 0, P)], file, new FileHoles([(0, (long)P)]));
            Assert.True(server.Serve((ulong)_page + 100), server.Fatal);
            Assert.Null(server.Fatal);
            Assert.Equal(1, server.NoLongerRegistered);
            Assert.Equal(0, server.Served);
        }
        Assert.Equal(0, _page[100]); // the kernel's own page: nothing was copied in
    }

    [Fact]
    public void A_fault_on_a_registered_page_is_served_from_the_file()
    {
        Userfaultfd.Register(_uffd, (ulong)_page, P);
        fixed (byte* file = _file)
        {
            var server = new PageServer(_uffd, [new RegionMapping((ulong)_page, P, 0, P)], file, new FileHoles([(0, (long)P)]));
            Assert.True(server.Serve((ulong)_page), server.Fatal);
            Assert.Equal(1, server.Served);
            Assert.Equal(0, server.NoLongerRegistered);
        }
        Assert.Equal(0x5a, _page[P - 1]);
    }
}
