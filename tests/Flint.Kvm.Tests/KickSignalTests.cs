using Flint.Sys;

namespace Flint.Kvm.Tests;

/// <summary>The vCPU kick signal must interrupt a blocking syscall and be harmless while the thread runs managed code.</summary>
public unsafe class KickSignalTests
{
    [Fact]
    public void Kick_interrupts_a_blocking_read_and_survives_managed_code()
    {
        Signals.InstallKickHandler();
        using var efd = new EventFd(nonBlocking: false);
        int tid = 0, errno = 0;
        long spins = 0;
        var ready = new ManualResetEventSlim();
        var t = new Thread(() =>
        {
            tid = Libc.gettid();
            ready.Set();
            // Busy managed code first: kicks landing here must not crash the process.
            var sw = System.Diagnostics.Stopwatch.StartNew();
            while (sw.ElapsedMilliseconds < 300) { spins++; _ = new object(); }
            ulong v;
            long r = Libc.read(efd.Fd, &v, 8); // blocks until a kick interrupts it
            errno = r < 0 ? Libc.Errno : 0;
        });
        t.Start();
        ready.Wait();
        for (int i = 0; i < 20; i++) { Signals.Kick(tid); Thread.Sleep(10); }
        for (int i = 0; i < 50 && t.IsAlive; i++) { Signals.Kick(tid); Thread.Sleep(20); }
        Assert.True(t.Join(5000), "the kick did not interrupt the blocking read");
        Assert.Equal(Libc.EINTR, errno);
        Assert.True(spins > 0);
    }
}
