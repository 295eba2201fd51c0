using Flint.Memory;

namespace Flint.Memory.Tests;

/// <summary>
/// Guest RAM for vhost-user: one memfd, each region a shared window of it, so another process mapping the fd at the
/// region's offset sees exactly the guest's bytes (what SET_MEM_TABLE promises the backend).
/// </summary>
public sealed class SharedGuestMemoryTests
{
    [Fact]
    public void Regions_are_windows_of_one_memfd_at_increasing_offsets()
    {
        using var m = GuestMemory.CreateShared([(0x10_0000UL, 0x2000UL), (0UL, 0x1000UL)]);
        Assert.True(m.IsShared);
        Assert.Equal(2, m.Regions.Count);
        Assert.Equal(0UL, m.Regions[0].GuestBase);
        Assert.True(m.Regions[0].SharedFd >= 0);
        Assert.Equal(m.Regions[0].SharedFd, m.Regions[1].SharedFd);
        Assert.Equal(0UL, m.Regions[0].SharedFdOffset);
        Assert.Equal(0x1000UL, m.Regions[1].SharedFdOffset);
        Assert.Equal(-1, GuestMemory.Create([(0UL, 0x1000UL)]).Regions[0].SharedFd);
    }

    [Fact]
    public void Another_opener_of_the_memfd_sees_the_guests_writes()
    {
        using var m = GuestMemory.CreateShared([(0UL, 0x1000UL), (0x10_0000UL, 0x2000UL)]);
        m.Write(0x10_0010UL, (ulong)0x1122334455667788);
        var file = File.ReadAllBytes($"/proc/self/fd/{m.Regions[1].SharedFd}");
        Assert.Equal(0x3000, file.Length);
        Assert.Equal(0x1122334455667788UL, BitConverter.ToUInt64(file, 0x1000 + 0x10));
    }

    [Fact]
    public void Discarded_pages_read_zero_again()
    {
        using var m = GuestMemory.CreateShared([(0UL, 0x4000UL)]);
        m.Fill(0x1000, 0x2000, 0xaa);
        m.Discard(0x1000, 0x1000);
        Assert.Equal(0, m.Read<byte>(0x1000));
        Assert.Equal(0xaa, m.Read<byte>(0x2000));
    }
}
