using System.Runtime.InteropServices;
using Flint.Sys;

namespace Flint.Devices.Tests.Sys;

/// <summary>
/// The io_uring interop against the real kernel: reads, writes and fsync on a temp file through the ring, a full
/// ring refusing more work until completions are reaped, a failing operation's -errno in its completion, and the
/// eventfd announcing completions. Needs io_uring on the host (this test host has it; see <see cref="The_kernel_offers_io_uring"/>).
/// </summary>
public sealed unsafe class IoUringTests : IDisposable
{
    private readonly string _path = Path.GetTempFileName();
    private readonly int _fd;
    private readonly EventFd _done = new();

    public IoUringTests()
    {
        File.WriteAllBytes(_path, Enumerable.Range(0, 8192).Select(i => (byte)(i / 512 + 1)).ToArray());
        _fd = Libc.Open(_path, Libc.O_RDWR);
        Assert.True(_fd >= 0);
    }

    public void Dispose()
    {
        Libc.close(_fd);
        _done.Dispose();
        File.Delete(_path);
    }

    /// <summary>io_uring_setup works here: a host without it must fail these tests loudly, not skip them quietly.</summary>
    [Fact]
    public void The_kernel_offers_io_uring() => Assert.Equal(0, IoUring.Probe());

    private static IoUringCompletion WaitOne(IoUring ring)
    {
        var until = DateTime.UtcNow.AddSeconds(10);
        while (true)
        {
            if (ring.TryReap(out var c)) return c;
            Assert.True(DateTime.UtcNow < until, "no completion within 10 s");
            int r = ring.WaitForCompletion(100_000_000);
            Assert.True(r == 0 || r == -IoUringAbi.ETIME, $"wait: {r}");
        }
    }

    [Fact]
    public void Scattered_read_through_the_ring()
    {
        using var ring = new IoUring(8, _fd, _done.Fd);
        byte* a = (byte*)NativeMemory.Alloc(512), b = (byte*)NativeMemory.Alloc(1024);
        IoVec* iov = stackalloc IoVec[2];
        iov[0] = new IoVec { Base = a, Len = 512 };
        iov[1] = new IoVec { Base = b, Len = 1024 };
        Assert.True(ring.TryPrepareReadv(iov, 2, 2 * 512, 77));
        Assert.Equal(1, ring.Submit());
        var c = WaitOne(ring);
        Assert.Equal(77UL, c.UserData);
        Assert.Equal(1536, c.Result);
        Assert.Equal(3, a[0]);
        Assert.Equal(4, b[0]);
        Assert.Equal(5, b[1023]);
        Assert.Equal(0u, ring.Pending);
        Assert.True(_done.Read() >= 1); // the registered eventfd was signalled
        NativeMemory.Free(a);
        NativeMemory.Free(b);
    }

    [Fact]
    public void Write_then_fsync_then_read_back()
    {
        using var ring = new IoUring(8, _fd, _done.Fd);
        byte* w = (byte*)NativeMemory.Alloc(1024);
        new Span<byte>(w, 1024).Fill(0xab);
        var iov = new IoVec { Base = w, Len = 1024 };
        Assert.True(ring.TryPrepareWritev(&iov, 1, 4 * 512, 1));
        Assert.Equal(1, ring.Submit());
        Assert.Equal(new IoUringCompletion(1, 1024), WaitOne(ring));
        Assert.True(ring.TryPrepareFsync(dataOnly: true, 2));
        Assert.True(ring.TryPrepareFsync(dataOnly: false, 3));
        Assert.Equal(2, ring.Submit());
        var done = new[] { WaitOne(ring), WaitOne(ring) }.OrderBy(c => c.UserData).ToArray();
        Assert.Equal(new[] { new IoUringCompletion(2, 0), new IoUringCompletion(3, 0) }, done);
        var file = File.ReadAllBytes(_path);
        Assert.All(file.AsSpan(4 * 512, 1024).ToArray(), x => Assert.Equal(0xab, x));
        Assert.Equal(7, file[6 * 512]);
        NativeMemory.Free(w);
    }

    [Fact]
    public void Full_ring_refuses_until_completions_are_reaped()
    {
        using var ring = new IoUring(4, _fd, _done.Fd);
        Assert.Equal(4u, ring.SqEntries);
        byte* buf = (byte*)NativeMemory.Alloc(512);
        var iov = new IoVec { Base = buf, Len = 512 };
        // Four prepared and not submitted fill the submission ring.
        for (ulong i = 0; i < 4; i++) Assert.True(ring.TryPrepareReadv(&iov, 1, 0, i));
        Assert.False(ring.HasRoom);
        Assert.False(ring.TryPrepareReadv(&iov, 1, 0, 99));
        Assert.Equal(4, ring.Submit());
        // Submitted, the SQ is free again, but completions are still owed: the ring admits work only while every
        // pending operation has a completion slot (CQ is twice the SQ here).
        for (ulong i = 4; i < ring.CqEntries; i++)
        {
            if (ring.Unsubmitted == ring.SqEntries) Assert.Equal((int)ring.SqEntries, ring.Submit());
            Assert.True(ring.TryPrepareReadv(&iov, 1, 0, i));
        }
        Assert.Equal(ring.CqEntries, ring.Pending);
        Assert.False(ring.TryPrepareReadv(&iov, 1, 0, 99));
        ring.Submit();
        var seen = new HashSet<ulong>();
        for (uint i = 0; i < ring.CqEntries; i++) Assert.True(seen.Add(WaitOne(ring).UserData));
        Assert.Equal(0u, ring.Pending);
        Assert.True(ring.HasRoom);
        Assert.True(ring.TryPrepareReadv(&iov, 1, 0, 100));
        NativeMemory.Free(buf);
    }

    [Fact]
    public void Failed_operation_completes_with_errno()
    {
        // A read into an address that is not mapped: the kernel answers -EFAULT in the completion, not on submit.
        using var ring = new IoUring(4, _fd, _done.Fd);
        var iov = new IoVec { Base = (void*)0x1000, Len = 512 };
        Assert.True(ring.TryPrepareReadv(&iov, 1, 0, 5));
        Assert.Equal(1, ring.Submit());
        Assert.Equal(new IoUringCompletion(5, -14 /* EFAULT */), WaitOne(ring));
    }

    [Fact]
    public void Read_only_file_refuses_writes_in_the_completion()
    {
        int ro = Libc.Open(_path, Libc.O_RDONLY);
        try
        {
            using var ring = new IoUring(4, ro, -1);
            byte* w = stackalloc byte[512];
            var iov = new IoVec { Base = w, Len = 512 };
            Assert.True(ring.TryPrepareWritev(&iov, 1, 0, 9));
            Assert.Equal(1, ring.Submit());
            Assert.Equal(new IoUringCompletion(9, -Libc.EBADF), WaitOne(ring));
        }
        finally { Libc.close(ro); }
    }

    [Fact]
    public void Wait_times_out_when_nothing_is_pending()
    {
        using var ring = new IoUring(4, _fd, -1);
        var sw = System.Diagnostics.Stopwatch.StartNew();
        Assert.Equal(-IoUringAbi.ETIME, ring.WaitForCompletion(20_000_000));
        Assert.True(sw.ElapsedMilliseconds < 5000);
    }

    [Fact]
    public void Setup_of_a_bad_file_fails_with_its_step()
    {
        var e = Assert.Throws<SysException>(() => new IoUring(4, 1_000_000, -1));
        Assert.Equal("io_uring_register files", e.Operation);
        Assert.Equal(Libc.EBADF, e.Errno);
    }
}
