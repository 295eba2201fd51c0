using Flint.Sys;

namespace Flint.Vmm.Tests;

public class EventLoopTests
{
    [Fact]
    public void Dispatches_ready_fds_and_stops_after_removal()
    {
        using var loop = new EventLoop();
        using var a = new EventFd();
        using var b = new EventFd();
        int ha = 0, hb = 0;
        loop.Add(a.Fd, _ => { a.Read(); ha++; });
        loop.Add(b.Fd, _ => { b.Read(); hb++; });
        a.Write();
        loop.RunOnce(100);
        Assert.Equal((1, 0), (ha, hb));
        loop.Remove(a.Fd);
        a.Write();
        b.Write();
        loop.RunOnce(100);
        Assert.Equal((1, 1), (ha, hb));
        Assert.Equal(1, loop.Count);
    }

    [Fact]
    public void Tokens_are_recycled_so_add_remove_cycles_do_not_grow()
    {
        using var loop = new EventLoop();
        for (int i = 0; i < 1000; i++)
        {
            using var e = new EventFd();
            int hits = 0;
            loop.Add(e.Fd, _ => { e.Read(); hits++; });
            e.Write();
            loop.RunOnce(100);
            Assert.Equal(1, hits);
            loop.Remove(e.Fd);
        }
        Assert.Equal(0, loop.Count);
    }

    [Fact]
    public void A_throwing_handler_does_not_stop_the_loop()
    {
        using var loop = new EventLoop();
        using var a = new EventFd();
        using var b = new EventFd();
        int hb = 0;
        loop.Add(a.Fd, _ => { a.Read(); throw new InvalidOperationException("boom"); });
        loop.Add(b.Fd, _ => { b.Read(); hb++; });
        a.Write();
        b.Write();
        loop.RunOnce(100);
        Assert.Equal(1, hb);
    }

    [Fact]
    public void Adding_the_same_fd_twice_is_refused()
    {
        using var loop = new EventLoop();
        using var a = new EventFd();
        loop.Add(a.Fd, _ => { });
        Assert.Throws<InvalidOperationException>(() => loop.Add(a.Fd, _ => { }));
    }
}
