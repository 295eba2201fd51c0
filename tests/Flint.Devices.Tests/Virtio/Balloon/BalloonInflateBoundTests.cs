using System.Diagnostics;
using Flint.Devices.Virtio.Balloon;
using static Flint.Devices.Virtio.Balloon.BalloonConstants;

namespace Flint.Devices.Tests.Virtio.Balloon;

/// <summary>
/// One inflate descriptor covering all of guest RAM must not hold the event loop: the device discards at most
/// <see cref="VirtioBalloon.MaxPfnsPerEvent"/> PFNs per event and carries on from its resume eventfd.
/// </summary>
public sealed class BalloonInflateBoundTests(Xunit.Abstractions.ITestOutputHelper output)
{
    [Fact]
    public void Inflate_over_all_of_RAM_is_spread_over_events()
    {
        const ulong ram = 4UL << 20; // 1 Mi PFN entries: 64 events' worth
        using var h = new BalloonHarness(statsIntervalS: 0, regions: [(0UL, ram)]);
        // The buffer is all of RAM; it reads as PFN 0x100 repeated (page 0x100 holds no ring), then whatever is there.
        h.Memory.Fill(0, ram, 0);
        for (ulong a = 0x100000; a < ram; a += 4) h.Memory.Write(a, 0x100u);
        h.Inflate.Push((0UL, (uint)ram, false));

        var first = Stopwatch.StartNew();
        h.Device.ProcessQueue(InflateQueue);
        first.Stop();

        // One event did a bounded part and left the request in progress, asking to be called back.
        Assert.Equal(0, h.Inflate.UsedIdx);
        Assert.Equal(1, h.Device.Metrics.InflateResumes);
        var resume = Assert.Single(h.Device.EventSources);
        Assert.True(IsReadable(resume.Fd));

        int events = 1;
        double worst = 0;
        var sw = Stopwatch.StartNew();
        while (h.Inflate.UsedIdx == 0 && events < 1000)
        {
            Assert.True(IsReadable(resume.Fd));
            long t0 = Stopwatch.GetTimestamp();
            resume.OnReady(1);
            worst = Math.Max(worst, Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
            events++;
        }
        Assert.Equal(1, h.Inflate.UsedIdx);
        output.WriteLine($"first event {first.Elapsed.TotalMilliseconds:F2} ms (JIT included), slowest resume {worst:F2} ms, {events} events, all {sw.Elapsed.TotalMilliseconds + first.Elapsed.TotalMilliseconds:F1} ms");
        Assert.Equal((int)(ram / 4 / VirtioBalloon.MaxPfnsPerEvent), events);
        Assert.False(IsReadable(resume.Fd));
        // A stray resume after the request is done does nothing.
        resume.OnReady(1);
        Assert.Equal(1, h.Inflate.UsedIdx);
    }

    [Fact]
    public void Reset_drops_the_inflate_in_progress()
    {
        const ulong ram = 4UL << 20;
        using var h = new BalloonHarness(statsIntervalS: 0, regions: [(0UL, ram)]);
        h.Inflate.Push((0UL, (uint)ram, false));
        h.Device.ProcessQueue(InflateQueue);
        Assert.Equal(0, h.Inflate.UsedIdx);
        h.Device.Reset();
        h.Device.EventSources[0].OnReady(1); // the pending resume finds nothing to do
        Assert.Equal(0, h.Inflate.UsedIdx);
    }

    private static unsafe bool IsReadable(int fd)
    {
        var pfd = stackalloc short[4];
        *(int*)pfd = fd;
        pfd[2] = 1; // POLLIN
        return poll(pfd, 1, 0) > 0;
    }

    [System.Runtime.InteropServices.DllImport("libc")]
    private static extern unsafe int poll(short* fds, nuint nfds, int timeout);
}
