using Flint.Devices.Virtio;
using Flint.Memory;

namespace Flint.Devices.Tests.Virtio;

/// <summary>
/// Plays the guest's virtio driver over a real GuestMemory: lays out the descriptor table and the avail/used
/// rings of one split queue, builds chains, publishes them and reads completions back. The default layout is the
/// constants below; a device with several queues gives each its own (<see cref="At"/>).
/// </summary>
public sealed class GuestDriver
{
    public const ulong DescBase = 0x1000;   // 16 x 256 = 4 KiB
    public const ulong AvailBase = 0x2000;  // 6 + 2 x 256
    public const ulong UsedBase = 0x3000;   // 6 + 8 x 256
    public const ulong DataBase = 0x10000;

    private ulong _nextData = DataBase;
    private ushort _nextDesc;

    public GuestDriver(GuestMemory memory, ushort size, ulong desc = DescBase, ulong avail = AvailBase, ulong used = UsedBase)
    {
        Memory = memory;
        Size = size;
        Desc = desc;
        Avail = avail;
        UsedRing = used;
        memory.Fill(desc, 16UL * size, 0);
        memory.Fill(avail, 6 + 2UL * size, 0);
        memory.Fill(used, 6 + 8UL * size, 0);
    }

    /// <summary>A queue whose descriptor table is at <paramref name="ringBase"/>, avail ring 4 KiB and used ring 8 KiB above.</summary>
    public static GuestDriver At(GuestMemory memory, ulong ringBase, ushort size = 16) =>
        new(memory, size, ringBase, ringBase + 0x1000, ringBase + 0x2000);

    public ulong Desc { get; }
    public ulong Avail { get; }
    public ulong UsedRing { get; }
    /// <summary>Used entries already taken by <see cref="TakeUsed"/>.</summary>
    public ushort SeenUsed { get; set; }

    public GuestMemory Memory { get; }
    public ushort Size { get; }
    public ushort AvailIdx { get; private set; }

    /// <summary>Points a queue at this layout and marks it ready, as the driver does through the transport.</summary>
    public void Configure(VirtQueue q)
    {
        q.Size = Size;
        q.DescTable = Desc;
        q.AvailRing = Avail;
        q.UsedRing = UsedRing;
        q.Ready = true;
    }

    /// <summary>Bump allocator for guest buffers; never reuses memory within a test.</summary>
    public ulong Alloc(uint len, byte fill = 0)
    {
        ulong a = _nextData;
        _nextData = (_nextData + len + 15) & ~15UL;
        if (len > 0) Memory.Fill(a, len, fill);
        return a;
    }

    public void SetDesc(ushort index, ulong addr, uint len, ushort flags, ushort next)
    {
        ulong d = Desc + 16UL * index;
        Memory.Write(d, addr);
        Memory.Write(d + 8, len);
        Memory.Write(d + 12, flags);
        Memory.Write(d + 14, next);
    }

    /// <summary>Writes the buffers into consecutive descriptors (wrapping), linked with NEXT; returns the head index.</summary>
    public ushort AddChain(params (ulong Addr, uint Len, bool Write)[] bufs)
    {
        ushort head = _nextDesc;
        for (int i = 0; i < bufs.Length; i++)
        {
            ushort idx = _nextDesc;
            _nextDesc = (ushort)((_nextDesc + 1) % Size);
            ushort flags = (ushort)((bufs[i].Write ? Descriptor.FlagWrite : 0) | (i + 1 < bufs.Length ? Descriptor.FlagNext : 0));
            SetDesc(idx, bufs[i].Addr, bufs[i].Len, flags, _nextDesc);
        }
        return head;
    }

    /// <summary>
    /// Puts a head on the avail ring and publishes the new idx with a release store (the driver's virtio_store_mb): a
    /// device running on another thread (the vsock tests' event loop) sees the entry before the idx.
    /// </summary>
    public void Publish(ushort head)
    {
        Memory.Write(Avail + 4 + 2UL * (ushort)(AvailIdx % Size), head);
        AvailIdx++;
        Volatile.Write(ref RingWord(Avail + 2), AvailIdx);
    }

    // SAFETY: GetHostPointer checks the two bytes lie in guest RAM; the memory outlives the driver.
    private unsafe ref ushort RingWord(ulong gpa) => ref *(ushort*)Memory.GetHostPointer(gpa, 2);

    public ushort Push(params (ulong Addr, uint Len, bool Write)[] bufs)
    {
        ushort head = AddChain(bufs);
        Publish(head);
        return head;
    }

    public void SetAvailIdx(ushort idx)
    {
        AvailIdx = idx;
        Memory.Write(Avail + 2, idx);
    }

    public void SetAvailFlags(ushort flags) => Memory.Write(Avail, flags);

    /// <summary>The device's used idx, read with an acquire load: the entries below it are complete.</summary>
    public ushort UsedIdx => Volatile.Read(ref RingWord(UsedRing + 2));

    public (uint Id, uint Len) Used(int n)
    {
        ulong e = UsedRing + 4 + 8UL * (ushort)(n % Size);
        return (Memory.Read<uint>(e), Memory.Read<uint>(e + 4));
    }

    /// <summary>New used entries since the last call.</summary>
    public List<(ushort Id, uint Len)> TakeUsed()
    {
        var list = new List<(ushort, uint)>();
        while (SeenUsed != UsedIdx)
        {
            var (id, len) = Used(SeenUsed);
            list.Add(((ushort)id, len));
            SeenUsed++;
        }
        return list;
    }
}

/// <summary>An interrupt line that counts triggers.</summary>
public sealed class CountingInterrupt : Flint.Devices.IInterrupt
{
    private int _count;
    public int Count => Volatile.Read(ref _count);
    public void Trigger() => Interlocked.Increment(ref _count);
}
