using Flint.Devices;
using Flint.Devices.Virtio;
using Flint.Memory;

namespace Flint.Bench.Micro;

/// <summary>
/// The guest side of one split virtqueue over a real GuestMemory (trimmed copy of the helper in
/// tests/Flint.Devices.Tests/Virtio/GuestDriver.cs; the bench project does not reference test projects).
/// </summary>
public sealed class GuestDriver
{
    public const ulong DescBase = 0x1000;   // 16 x 256 = 4 KiB
    public const ulong AvailBase = 0x2000;  // 6 + 2 x 256
    public const ulong UsedBase = 0x3000;   // 6 + 8 x 256
    public const ulong DataBase = 0x10000;

    private ulong _nextData = DataBase;

    public GuestDriver(GuestMemory memory, ushort size)
    {
        Memory = memory;
        Size = size;
        memory.Fill(DescBase, 0x3000, 0);
    }

    public GuestMemory Memory { get; }
    public ushort Size { get; }
    public ushort AvailIdx { get; private set; }

    public void Configure(VirtQueue q)
    {
        q.Size = Size;
        q.DescTable = DescBase;
        q.AvailRing = AvailBase;
        q.UsedRing = UsedBase;
        q.Ready = true;
    }

    public ulong Alloc(uint len, byte fill = 0)
    {
        ulong a = _nextData;
        _nextData = (_nextData + len + 15) & ~15UL;
        if (len > 0) Memory.Fill(a, len, fill);
        return a;
    }

    public void SetDesc(ushort index, ulong addr, uint len, ushort flags, ushort next)
    {
        ulong d = DescBase + 16UL * index;
        Memory.Write(d, addr);
        Memory.Write(d + 8, len);
        Memory.Write(d + 12, flags);
        Memory.Write(d + 14, next);
    }

    /// <summary>Puts a head on the avail ring and publishes the new idx (what the guest does per request).</summary>
    public void Publish(ushort head)
    {
        Memory.Write(AvailBase + 4 + 2UL * (ushort)(AvailIdx % Size), head);
        AvailIdx++;
        Memory.Write(AvailBase + 2, AvailIdx);
    }

    public ushort UsedIdx => Memory.Read<ushort>(UsedBase + 2);
}

public sealed class NullInterrupt : IInterrupt
{
    public int Count;
    public void Trigger() => Count++;
}
