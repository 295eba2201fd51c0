using Flint.Devices.Tests.Virtio;
using Flint.Devices.Virtio;
using Flint.Devices.Virtio.Balloon;
using Flint.Memory;

namespace Flint.Devices.Tests.Virtio.Balloon;

/// <summary>
/// The guest side of one queue at a chosen base (GuestDriver's layout is fixed to one queue): descriptor table at
/// base, avail ring at base + 4 KiB, used ring at base + 8 KiB.
/// </summary>
public sealed class QueueDriver(GuestMemory memory, ulong baseAddr, ushort size = 16)
{
    private ushort _nextDesc;

    public ulong DescBase { get; } = baseAddr;
    public ulong AvailBase { get; } = baseAddr + 0x1000;
    public ulong UsedBase { get; } = baseAddr + 0x2000;
    public ushort AvailIdx { get; private set; }

    public void Configure(VirtQueue q)
    {
        memory.Fill(DescBase, 0x3000, 0);
        q.Size = size;
        q.DescTable = DescBase;
        q.AvailRing = AvailBase;
        q.UsedRing = UsedBase;
        q.Ready = true;
    }

    public void SetDesc(ushort index, ulong addr, uint len, ushort flags, ushort next)
    {
        ulong d = DescBase + 16UL * index;
        memory.Write(d, addr);
        memory.Write(d + 8, len);
        memory.Write(d + 12, flags);
        memory.Write(d + 14, next);
    }

    public ushort Push(params (ulong Addr, uint Len, bool Write)[] bufs)
    {
        ushort head = _nextDesc;
        for (int i = 0; i < bufs.Length; i++)
        {
            ushort idx = _nextDesc;
            _nextDesc = (ushort)((_nextDesc + 1) % size);
            ushort flags = (ushort)((bufs[i].Write ? Descriptor.FlagWrite : 0) | (i + 1 < bufs.Length ? Descriptor.FlagNext : 0));
            SetDesc(idx, bufs[i].Addr, bufs[i].Len, flags, _nextDesc);
        }
        Publish(head);
        return head;
    }

    public void Publish(ushort head)
    {
        memory.Write(AvailBase + 4 + 2UL * (ushort)(AvailIdx % size), head);
        AvailIdx++;
        memory.Write(AvailBase + 2, AvailIdx);
    }

    public ushort UsedIdx => memory.Read<ushort>(UsedBase + 2);

    public (uint Id, uint Len) Used(int n)
    {
        ulong e = UsedBase + 4 + 8UL * (ushort)(n % size);
        return (memory.Read<uint>(e), memory.Read<uint>(e + 4));
    }
}

/// <summary>A balloon activated directly on three queue layouts in low memory; buffers come from 0x10000 up.</summary>
public sealed class BalloonHarness : IDisposable
{
    private ulong _nextData = 0x10000;

    public BalloonHarness(uint amountMib = 16, bool deflateOnOom = false, uint statsIntervalS = 1,
        (ulong, ulong)[]? regions = null)
    {
        Memory = GuestMemory.Create(regions ?? [(0UL, 0x400000UL)]);
        Device = new VirtioBalloon(amountMib, deflateOnOom, statsIntervalS);
        Interrupt = new VirtioInterrupt(Line);
        int nq = Device.QueueMaxSizes.Length;
        Queues = new VirtQueue[nq];
        Drivers = new QueueDriver[nq];
        for (int i = 0; i < nq; i++)
        {
            Queues[i] = new VirtQueue(VirtioBalloon.QueueSize);
            Drivers[i] = new QueueDriver(Memory, 0x1000 + 0x3000UL * (ulong)i);
            Drivers[i].Configure(Queues[i]);
        }
        Assert.True(Device.Activate(Memory, Queues, Interrupt, Device.AvailableFeatures));
    }

    public GuestMemory Memory { get; }
    public VirtioBalloon Device { get; }
    public CountingInterrupt Line { get; } = new();
    public VirtioInterrupt Interrupt { get; }
    public VirtQueue[] Queues { get; }
    public QueueDriver[] Drivers { get; }
    public QueueDriver Inflate => Drivers[BalloonConstants.InflateQueue];
    public QueueDriver Deflate => Drivers[BalloonConstants.DeflateQueue];
    public QueueDriver Stats => Drivers[BalloonConstants.StatsQueue];

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
