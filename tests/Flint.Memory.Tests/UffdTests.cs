using System.Text.Json;
using Flint.Sys;
using Flint.UffdHandler;

namespace Flint.Memory.Tests;

/// <summary>
/// The Uffd backend end to end without KVM: guest memory made by <see cref="GuestMemory.CreateForUffd"/> (real
/// userfaultfd, regions registered, Firecracker's handshake over a real Unix socket) served by the real
/// flint-uffd-handler process from a memory file; every touched page must read as the file holds it, and the handler
/// must count exactly the pages touched. Runs as root here (the syscall and /dev/userfaultfd both work).
/// </summary>
[Collection(UffdCollection.Name)]
public sealed unsafe class UffdTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("flint-uffd-").FullName;
    // Two regions, as guest RAM has above 3 GiB: 1 MiB + 512 KiB; file = both, back to back.
    private static readonly (ulong, ulong)[] Ranges = [(0, 1UL << 20), (1UL << 32, 512UL << 10)];
    private const int Total = (1 << 20) + (512 << 10);

    public void Dispose() => Directory.Delete(_dir, true);

    private (string Sock, string Mem, byte[] Bytes) Files()
    {
        var bytes = new byte[Total];
        new Random(42).NextBytes(bytes);
        string mem = Path.Combine(_dir, "vm.mem"), sock = Path.Combine(_dir, "uffd.sock");
        File.WriteAllBytes(mem, bytes);
        return (sock, mem, bytes);
    }

    [Fact]
    public void Touched_pages_read_as_the_memory_file_and_the_handler_counts_them()
    {
        var (sock, mem, bytes) = Files();
        using var h = new UffdHandlerProcess(sock, mem);
        var memory = GuestMemory.CreateForUffd(Ranges, sock, UffdSource.SyscallThenDevice);
        int[] pages = [0, 1, 7, 255, 256, 300, 383];  // region 0 holds pages 0-255, region 1 pages 256-383 of the file
        h.Bounded(() =>
        {
            foreach (int page in pages)
            {
                var (r, within) = page < 256 ? (memory.Regions[0], page) : (memory.Regions[1], page - 256);
                var got = new ReadOnlySpan<byte>(r.Host + within * 4096L, 4096);
                Assert.True(got.SequenceEqual(bytes.AsSpan(page * 4096, 4096)), $"page {page} differs from the file");
                // A second touch of a served page faults no more.
                Assert.Equal(bytes[page * 4096 + 123], r.Host[within * 4096L + 123]);
            }
            // Through the guest-physical accessor too (a write after the read: the page is ours now).
            memory.Write<ulong>((1UL << 32) + 44 * 4096 + 8, 0x1122334455667788UL); // file page 300 = region 1 page 44
        });
        // Flint going away (its socket closing) ends the handler, which prints its count.
        memory.Dispose();
        var (code, output) = h.WaitExit();
        Assert.Equal(0, code);
        Assert.Equal(pages.Length, UffdHandlerProcess.Served(output));
        Assert.Contains("serving 2 region(s), page size 4096", output);
    }

    [Fact]
    public void A_discard_after_the_handler_died_returns_and_keeps_the_pages()
    {
        // The balloon's madvise on registered memory waits for the handler to read the remove event, and Flint holds the
        // userfaultfd too, so with the handler dead that wait had no end: the VMM thread (and with it the API) hung.
        var (sock, mem, bytes) = Files();
        var h = new UffdHandlerProcess(sock, mem);
        using var memory = GuestMemory.CreateForUffd(Ranges, sock, UffdSource.SyscallThenDevice);
        byte* host = memory.Regions[0].Host;
        h.Bounded(() => Assert.Equal(bytes[5 * 4096], host[5 * 4096]));
        h.Dispose(); // SIGKILL, and reaped: its end of the socket is closed
        h.Bounded(() => memory.Discard(4 * 4096, 4 * 4096), 5_000, "Discard waited on a page fault handler that is gone");
        Assert.False(memory.FaultHandlerAlive);
        Assert.Equal(bytes[5 * 4096 + 1], host[5 * 4096 + 1]); // kept: nothing could serve it again
    }

    [Fact]
    public void A_balloon_remove_is_handed_to_the_handler_and_the_range_reads_zero_afterwards()
    {
        var (sock, mem, bytes) = Files();
        using var h = new UffdHandlerProcess(sock, mem, "--progress", "2");
        using var memory = GuestMemory.CreateForUffd(Ranges, sock, UffdSource.DeviceOnly);
        byte* host = memory.Regions[0].Host;
        h.Bounded(() =>
        {
            Assert.Equal(bytes[5 * 4096], host[5 * 4096]);
            // The balloon's madvise: the kernel reports the range (UFFD_EVENT_REMOVE) and waits for the handler to read it.
            Assert.Equal(0, Libc.madvise(host + 4 * 4096, 4 * 4096, Libc.MADV_DONTNEED));
            Assert.Equal(0, host[5 * 4096 + 1]);    // unregistered by the handler: the kernel's zero page now
            Assert.Equal(bytes[9 * 4096], host[9 * 4096]);  // outside the range: served from the file
        });
        Libc.kill(h.Pid, 15); // SIGTERM: the handler prints its count and exits
        var (code, output) = h.WaitExit();
        Assert.Equal(0, code);
        Assert.Equal(2, UffdHandlerProcess.Served(output));
        Assert.Contains("4 removed by the balloon", output);
        Assert.Contains("flint-uffd-handler: 2 pages served", output); // --progress 2
    }

    /// <summary>
    /// A sparse memory file as a Full snapshot writes it: data at file pages 0-1, 255-257 and 383; every other page a
    /// hole (never written). The holes of region 0 (pages 2-254) and region 1 (258-382) read zero.
    /// </summary>
    private (string Sock, string Mem, byte[] Bytes) SparseFiles()
    {
        var bytes = new byte[Total];
        var rnd = new Random(7);
        foreach (var (from, count) in new[] { (0, 2), (255, 3), (383, 1) }) rnd.NextBytes(bytes.AsSpan(from * 4096, count * 4096));
        string mem = Path.Combine(_dir, "sparse.mem"), sock = Path.Combine(_dir, "uffd.sock");
        using (var f = new FileStream(mem, FileMode.Create, FileAccess.Write))
        {
            f.SetLength(Total);
            foreach (var (from, count) in new[] { (0, 2), (255, 3), (383, 1) })
            {
                f.Position = from * 4096L;
                f.Write(bytes, from * 4096, count * 4096);
            }
        }
        Assert.Equal(6 * 4096L, SparseFile.DataExtents(mem).Sum(e => e.End - e.Start)); // ext4/tmpfs keep the holes
        return (sock, mem, bytes);
    }

    [Fact]
    public void A_page_in_a_hole_of_the_memory_file_is_answered_with_the_zero_page_and_counted_apart()
    {
        var (sock, mem, bytes) = SparseFiles();
        using var h = new UffdHandlerProcess(sock, mem);
        Assert.Contains($"{6 * 4096} of {Total} bytes of the memory file are data, in 3 extent(s)", h.Output);
        var memory = GuestMemory.CreateForUffd(Ranges, sock, UffdSource.SyscallThenDevice);
        int[] data = [0, 1, 256, 383], holes = [2, 100, 254, 258, 300];
        h.Bounded(() =>
        {
            foreach (int page in data.Concat(holes))
            {
                var (r, within) = page < 256 ? (memory.Regions[0], page) : (memory.Regions[1], page - 256);
                var got = new ReadOnlySpan<byte>(r.Host + within * 4096L, 4096);
                Assert.True(got.SequenceEqual(bytes.AsSpan(page * 4096, 4096)), $"page {page} differs from the file");
            }
            Assert.True(new ReadOnlySpan<byte>(memory.Regions[0].Host + 100 * 4096L, 4096).IndexOfAnyExcept((byte)0) < 0);
            // The zero page is read-only and shared: a write to it gets the guest a private page of its own (no fault
            // for the handler: the page is present), and the next hole still reads zero.
            memory.Write<ulong>(100 * 4096 + 16, 0xfeedUL);
            Assert.Equal(0xfeedUL, memory.Read<ulong>(100 * 4096 + 16));
            Assert.Equal(0UL, memory.Read<ulong>(101 * 4096 + 16));
        });
        memory.Dispose();
        var (code, output) = h.WaitExit();
        Assert.Equal(0, code);
        Assert.Equal(data.Length, UffdHandlerProcess.Served(output));   // copied from the file: the data pages only
        Assert.Contains($"({holes.Length + 1} zero pages for holes, 0 already present, 0 removed by the balloon, 0 no longer registered)", output); // + page 101
    }

    [Theory]
    [InlineData(0, 4096, false)]           // the first data extent
    [InlineData(8192, 4096, true)]         // between the extents
    [InlineData(12288, 4096, true)]        // ends where the next extent starts
    [InlineData(12288, 8192, false)]       // overlaps its start
    [InlineData(20480, 4096, true)]        // starts where an extent ends
    [InlineData(1 << 20, 4096, true)]      // past the last extent
    [InlineData(0, 2 << 20, false)]        // a huge page holding some data is copied, not zeroed
    [InlineData(18446744073709547520, 4096, false)] // an offset no file has: never called a hole
    public void Holes_are_the_ranges_no_data_extent_touches(ulong offset, ulong length, bool hole)
    {
        var holes = new FileHoles([(0, 8192), (16384, 20480)]);
        Assert.Equal(hole, holes.IsHole(offset, length));
        Assert.True(new FileHoles([]).IsHole(0, 4096)); // an all-hole file (a guest that never touched its RAM)
    }

    [Fact]
    public void Data_extents_out_of_order_are_refused_rather_than_read_as_holes() =>
        Assert.Throws<IOException>(() => new FileHoles([(8192, 12288), (0, 4096)]));

    [Fact]
    public void The_handshake_is_firecrackers_json()
    {
        using var memory = GuestMemory.Create(Ranges);
        var json = System.Text.Encoding.ASCII.GetString(GuestMemory.HandshakeJson(memory, 4096));
        Assert.DoesNotContain(" ", json);
        using var d = JsonDocument.Parse(json);
        var a = d.RootElement.EnumerateArray().ToArray();
        Assert.Equal(2, a.Length);
        Assert.Equal(["base_host_virt_addr", "size", "offset", "page_size", "page_size_kib"], a[0].EnumerateObject().Select(p => p.Name).ToArray());
        Assert.Equal((ulong)memory.Regions[1].Host, a[1].GetProperty("base_host_virt_addr").GetUInt64());
        Assert.Equal(1UL << 20, a[1].GetProperty("offset").GetUInt64());
        Assert.Equal(512UL << 10, a[1].GetProperty("size").GetUInt64());
        Assert.Equal(4096UL, a[1].GetProperty("page_size_kib").GetUInt64());
        // And the handler's parser takes it as it is.
        var parsed = RegionMapping.Parse(GuestMemory.HandshakeJson(memory, 4096), Total);
        Assert.Equal(new RegionMapping((ulong)memory.Regions[0].Host, 1UL << 20, 0, 4096), parsed[0]);
    }

    /// <summary>
    /// This process's open userfaultfds and sockets: what a failed CreateForUffd could leak. Not every fd: test classes
    /// running in parallel open and close files of their own meanwhile.
    /// </summary>
    private static int OpenFds() => Directory.GetFiles("/proc/self/fd").Count(f =>
    {
        try
        {
            string? target = new FileInfo(f).LinkTarget;
            return target is not null && (target.StartsWith("socket:", StringComparison.Ordinal) || target.Contains("userfaultfd", StringComparison.Ordinal));
        }
        catch (IOException) { return false; } // closed while we looked
    });

    [Fact]
    public void No_handler_at_the_path_is_firecrackers_connect_error_and_leaves_nothing_open()
    {
        int before = OpenFds();
        var e = Assert.Throws<GuestMemoryUffdException>(() => GuestMemory.CreateForUffd(Ranges, Path.Combine(_dir, "absent.sock"), UffdSource.SyscallThenDevice));
        Assert.Equal("Failed to connect to UDS Unix stream: No such file or directory (os error 2)", e.Message);
        var e2 = Assert.Throws<GuestMemoryUffdException>(() => GuestMemory.CreateForUffd(Ranges, "/" + new string('s', 200), UffdSource.DeviceOnly));
        Assert.Equal("Failed to connect to UDS Unix stream: path must be shorter than SUN_LEN", e2.Message);
        // A file that is not a socket.
        File.WriteAllText(Path.Combine(_dir, "plain"), "");
        var e3 = Assert.Throws<GuestMemoryUffdException>(() => GuestMemory.CreateForUffd(Ranges, Path.Combine(_dir, "plain"), UffdSource.SyscallThenDevice));
        Assert.Equal("Failed to connect to UDS Unix stream: Connection refused (os error 111)", e3.Message);
        Assert.Equal(before, OpenFds());
    }

    [Fact]
    public void Both_ways_of_getting_a_userfaultfd_work_here()
    {
        foreach (var source in new[] { UffdSource.SyscallThenDevice, UffdSource.DeviceOnly })
        {
            int fd = Userfaultfd.Open(Libc.O_CLOEXEC | Libc.O_NONBLOCK, source);
            try { Userfaultfd.Handshake(fd, UffdAbi.FeatureEventRemove); }
            finally { Libc.close(fd); }
        }
    }

    [Theory]
    [InlineData("{}")]
    [InlineData("[]")]
    [InlineData("[{\"base_host_virt_addr\":4096,\"size\":4096,\"offset\":0}]")]                                   // no page size
    [InlineData("[{\"base_host_virt_addr\":4096,\"size\":4096,\"offset\":0,\"page_size\":4095}]")]               // not a power of two
    [InlineData("[{\"base_host_virt_addr\":4097,\"size\":8192,\"offset\":0,\"page_size\":4096}]")]               // unaligned
    [InlineData("[{\"base_host_virt_addr\":4096,\"size\":8192,\"offset\":4096,\"page_size\":4096}]")]            // past the file
    [InlineData("[{\"base_host_virt_addr\":18446744073709547520,\"size\":8192,\"offset\":0,\"page_size\":4096}]")] // wraps
    [InlineData("[{\"base_host_virt_addr\":4096,\"size\":4096,\"offset\":0,\"page_size\":4096},{\"base_host_virt_addr\":4096,\"size\":4096,\"offset\":4096,\"page_size\":4096}]")] // overlap
    [InlineData("[{\"base_host_virt_addr\":4096,\"size\":4096,\"offset\":0,\"page_size\":4096}]")]               // covers half the file
    [InlineData("[{\"base_host_virt_addr\":\"x\",\"size\":8192,\"offset\":0,\"page_size\":4096}]")]
    public void The_handler_refuses_mappings_that_do_not_fit_the_memory_file(string json) =>
        Assert.ThrowsAny<Exception>(() => RegionMapping.Parse(System.Text.Encoding.ASCII.GetBytes(json), 8192));

    [Fact]
    public void The_handler_takes_page_size_kib_alone_as_older_firecrackers_send()
    {
        var r = RegionMapping.Parse("[{\"base_host_virt_addr\":4096,\"size\":8192,\"offset\":0,\"page_size_kib\":4096}]"u8, 8192);
        Assert.Equal(4096UL, r[0].PageSize);
    }
}
