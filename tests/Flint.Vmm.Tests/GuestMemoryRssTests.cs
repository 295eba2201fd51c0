using Flint.Memory;

namespace Flint.Vmm.Tests;

/// <summary>
/// The measure the free page KVM tests assert on (<see cref="GuestMemoryRss"/>), checked without KVM on guest memory
/// in this process: it sees pages the guest touches arrive and pages the balloon discards leave, in both layouts a
/// balloon meets (anonymous memory, and the memfd of vhost-user setups).
/// </summary>
public sealed class GuestMemoryRssTests
{
    private const ulong MiB = 1UL << 20;
    private const ulong Size = 192 * MiB;

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Guest_memory_rss_follows_touched_and_discarded_pages(bool shared)
    {
        using var mem = shared ? GuestMemory.CreateShared([(0UL, Size)]) : GuestMemory.Create([(0UL, Size)]);
        int pid = Environment.ProcessId;
        long idle = GuestMemoryRss.Kib(pid, (long)Size);

        mem.Fill(16 * MiB, 16 * MiB, 0x5a);
        long touched = GuestMemoryRss.Kib(pid, (long)Size);
        Assert.InRange(touched - idle, 16 * 1024, 16 * 1024 + 64);

        mem.Discard(16 * MiB, 8 * MiB);
        long discarded = GuestMemoryRss.Kib(pid, (long)Size);
        Assert.InRange(touched - discarded, 8 * 1024 - 64, 8 * 1024);
        Assert.True(GuestMemoryRss.ProcessKib(pid) >= discarded);
    }
}
