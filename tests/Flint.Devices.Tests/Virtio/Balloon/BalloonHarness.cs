using Flint.Devices.Tests.Virtio;
using Flint.Devices.Virtio;
using Flint.Devices.Virtio.Balloon;
using Flint.Memory;

namespace Flint.Devices.Tests.Virtio.Balloon;

/// <summary>A balloon activated directly on its queue layouts (up to five) in low memory; buffers come from 0x10000 up.</summary>
public sealed class BalloonHarness : IDisposable
{
    private ulong _nextData = 0x10000;

    public BalloonHarness(uint amountMib = 16, bool deflateOnOom = false, uint statsIntervalS = 1,
        (ulong, ulong)[]? regions = null, bool freePageHinting = false, bool freePageReporting = false)
    {
        Memory = GuestMemory.Create(regions ?? [(0UL, 0x400000UL)]);
        Device = new VirtioBalloon(amountMib, deflateOnOom, statsIntervalS, freePageHinting, freePageReporting);
        Interrupt = new VirtioInterrupt(Line);
        int nq = Device.QueueMaxSizes.Length;
        Queues = new VirtQueue[nq];
        Drivers = new GuestDriver[nq];
        for (int i = 0; i < nq; i++)
        {
            Queues[i] = new VirtQueue(VirtioBalloon.QueueSize);
            Drivers[i] = GuestDriver.At(Memory, 0x1000 + 0x3000UL * (ulong)i);
            Drivers[i].Configure(Queues[i]);
        }
        Assert.True(Device.Activate(Memory, Queues, Interrupt, Device.AvailableFeatures));
    }

    public GuestMemory Memory { get; }
    public VirtioBalloon Device { get; }
    public CountingInterrupt Line { get; } = new();
    public VirtioInterrupt Interrupt { get; }
    public VirtQueue[] Queues { get; }
    public GuestDriver[] Drivers { get; }
    public GuestDriver Inflate => Drivers[BalloonConstants.InflateQueue];
    public GuestDriver Deflate => Drivers[BalloonConstants.DeflateQueue];
    public GuestDriver Stats => Drivers[BalloonConstants.StatsQueue];
    public GuestDriver Hinting => Drivers[Device.FreePageHintQueue];
    public GuestDriver Reporting => Drivers[Device.FreePageReportQueue];

    public ulong Alloc(uint len)
    {
        ulong a = _nextData;
        _nextData = (_nextData + len + 15) & ~15UL;
        return a;
    }

    /// <summary>A device-readable array of PFNs.</summary>
    public (ulong Addr, uint Len, bool Write) PfnArray(params uint[] pfns)
    {
        ulong a = Alloc((uint)pfns.Length * 4);
        for (int i = 0; i < pfns.Length; i++) Memory.Write(a + 4UL * (ulong)i, pfns[i]);
        return (a, (uint)pfns.Length * 4, false);
    }

    /// <summary>A device-readable stats buffer of packed (u16 tag, u64 value) entries.</summary>
    public (ulong Addr, uint Len, bool Write) StatsBuffer(params (ushort Tag, ulong Val)[] stats)
    {
        ulong a = Alloc((uint)stats.Length * 10);
        for (int i = 0; i < stats.Length; i++)
        {
            Memory.Write(a + 10UL * (ulong)i, stats[i].Tag);
            Memory.Write(a + 10UL * (ulong)i + 2, stats[i].Val);
        }
        return (a, (uint)stats.Length * 10, false);
    }

    public void Dispose()
    {
        Device.Dispose();
        Memory.Dispose();
    }
}
