using System.Buffers.Binary;
using Flint.Devices.Mmds;
using Flint.Devices.Tests.Net;
using Flint.Devices.Virtio;
using Flint.Devices.Virtio.Net;
using Flint.Memory;

namespace Flint.Devices.Tests.Virtio.Net;

/// <summary>One split queue laid out by the test playing the guest driver (like GuestDriver, with movable bases).</summary>
public sealed class NetQueueDriver(GuestMemory mem, ulong desc, ulong avail, ulong used, ushort size)
{
    private ushort _nextDesc;
    public ushort AvailIdx;
    public ushort SeenUsed;

    public void Configure(VirtQueue q)
    {
        mem.Fill(desc, 16UL * size, 0);
        mem.Fill(avail, 6 + 2UL * size, 0);
        mem.Fill(used, 6 + 8UL * size, 0);
        q.Size = size; q.DescTable = desc; q.AvailRing = avail; q.UsedRing = used; q.Ready = true;
    }

    public ushort Push(params (ulong Addr, uint Len, bool Write)[] bufs)
    {
        ushort head = _nextDesc;
        for (int i = 0; i < bufs.Length; i++)
        {
            ushort idx = _nextDesc;
            _nextDesc = (ushort)((_nextDesc + 1) % size);
            ushort flags = (ushort)((bufs[i].Write ? Descriptor.FlagWrite : 0) | (i + 1 < bufs.Length ? Descriptor.FlagNext : 0));
            ulong d = desc + 16UL * idx;
            mem.Write(d, bufs[i].Addr); mem.Write(d + 8, bufs[i].Len); mem.Write(d + 12, flags); mem.Write(d + 14, _nextDesc);
        }
        mem.Write(avail + 4 + 2UL * (ushort)(AvailIdx % size), head);
        AvailIdx++;
        mem.Write(avail + 2, AvailIdx);
        return head;
    }

    public ushort UsedIdx => mem.Read<ushort>(used + 2);

    /// <summary>New used entries since the last call.</summary>
    public List<(ushort Id, uint Len)> TakeUsed()
    {
        var list = new List<(ushort, uint)>();
        while (SeenUsed != UsedIdx)
        {
            ulong e = used + 4 + 8UL * (ushort)(SeenUsed % size);
            list.Add(((ushort)mem.Read<uint>(e), mem.Read<uint>(e + 4)));
            SeenUsed++;
        }
        return list;
    }
}

/// <summary>A VirtioNet over a real tap in a throwaway namespace, activated directly on two test-laid queues.</summary>
public sealed class NetHarness : IDisposable
{
    public const ulong MemSize = 0x800000;
    public static readonly byte[] GuestMac = [0x06, 0, 0xac, 0x10, 0, 2];

    private ulong _nextData = 0x10000;
    private readonly Dictionary<ushort, (ulong Addr, uint Len)[]> _rxBufs = new();

    public NetHarness(MmdsNetworkStack? mmds = null, INetRateLimiter? rx = null, INetRateLimiter? tx = null, ulong? features = null, bool activate = true)
    {
        Ns = new NetnsTap();
        Memory = GuestMemory.Create([(0UL, MemSize)]);
        Device = new VirtioNet(Ns.Tap, GuestMac, rx, tx, mmds);
        Line = new CountingInterrupt();
        Interrupt = new VirtioInterrupt(Line);
        RxQ = new VirtQueue(VirtioNet.QueueSize);
        TxQ = new VirtQueue(VirtioNet.QueueSize);
        Rx = new NetQueueDriver(Memory, 0x1000, 0x2000, 0x3000, 256);
        Tx = new NetQueueDriver(Memory, 0x4000, 0x5000, 0x6000, 256);
        Rx.Configure(RxQ);
        Tx.Configure(TxQ);
        if (activate)
            Assert.True(Device.Activate(Memory, [RxQ, TxQ], Interrupt, features ?? (VirtioFeatures.Version1 | (1UL << NetConstants.FeatureMac))));
    }

    public NetnsTap Ns { get; }
    public GuestMemory Memory { get; }
    public VirtioNet Device { get; }
    public CountingInterrupt Line { get; }
    public VirtioInterrupt Interrupt { get; }
    public VirtQueue RxQ { get; }
    public VirtQueue TxQ { get; }
    public NetQueueDriver Rx { get; }
    public NetQueueDriver Tx { get; }

    public ulong Alloc(uint len)
    {
        ulong a = _nextData;
        _nextData = (_nextData + len + 15) & ~15UL;
        if (_nextData > MemSize) throw new InvalidOperationException("harness out of guest memory");
        Memory.Fill(a, len, 0xee);
        return a;
    }

    /// <summary>Posts receive chains: each one descriptor of <paramref name="size"/> bytes.</summary>
    public void PostRx(int count, uint size = 2048)
    {
        for (int i = 0; i < count; i++)
        {
            ulong a = Alloc(size);
            ushort h = Rx.Push((a, size, true));
            _rxBufs[h] = [(a, size)];
        }
    }

    /// <summary>Posts one "big packets" chain like Linux without MRG_RXBUF: a 12-byte header buffer plus 17 pages.</summary>
    public void PostRxBig()
    {
        var parts = new List<(ulong, uint, bool)>();
        var rec = new List<(ulong, uint)>();
        ulong h = Alloc(12);
        parts.Add((h, 12, true)); rec.Add((h, 12));
        for (int i = 0; i < 17; i++) { ulong p = Alloc(4096); parts.Add((p, 4096, true)); rec.Add((p, 4096)); }
        ushort head = Rx.Push(parts.ToArray());
        _rxBufs[head] = rec.ToArray();
    }

    /// <summary>Sends one frame from the guest: header descriptor + frame descriptor, then the tx notify.</summary>
    public void Send(byte[] frame, byte hdrFlags = 0)
    {
        ulong h = Alloc(12), f = Alloc((uint)frame.Length);
        Memory.Fill(h, 12, 0);
        Memory.Write(h, hdrFlags);
        Memory.Write(f, frame.AsSpan());
        Tx.Push((h, 12, false), (f, (uint)frame.Length, false));
        Device.ProcessQueue(NetConstants.TxQueue);
    }

    /// <summary>Frames (virtio header stripped) the device completed on the rx queue since the last call.</summary>
    public List<byte[]> TakeRx()
    {
        var frames = new List<byte[]>();
        foreach (var (id, len) in Rx.TakeUsed())
        {
            var bufs = _rxBufs[id];
            var all = new byte[len];
            int off = 0;
            foreach (var (a, l) in bufs)
            {
                int c = (int)Math.Min(l, len - (uint)off);
                if (c <= 0) break;
                Memory.Read(a, all.AsSpan(off, c));
                off += c;
            }
            Assert.True(len >= 12);
            Assert.Equal(1, BinaryPrimitives.ReadUInt16LittleEndian(all.AsSpan(10))); // num_buffers
            frames.Add(all[12..]);
        }
        return frames;
    }

    /// <summary>Polls the tap like the event loop until <paramref name="match"/> sees a frame (or the time runs out).</summary>
    public byte[]? WaitFrame(Func<byte[], bool> match, int timeoutMs = 3000, Action<byte[]>? onOther = null)
    {
        var sw = System.Diagnostics.Stopwatch.StartNew();
        while (sw.ElapsedMilliseconds < timeoutMs)
        {
            Device.OnTapEvent(1);
            foreach (var f in TakeRx())
            {
                if (match(f)) return f;
                onOther?.Invoke(f);
            }
            Thread.Sleep(5);
        }
        return null;
    }

    public void Dispose()
    {
        Device.Dispose();
        Ns.Dispose();
        Memory.Dispose();
    }
}
