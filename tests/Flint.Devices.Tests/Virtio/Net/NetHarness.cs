using System.Buffers.Binary;
using Flint.Devices.Mmds;
using Flint.Devices.Tests.Net;
using Flint.Devices.Virtio;
using Flint.Devices.Virtio.Net;
using Flint.Memory;

namespace Flint.Devices.Tests.Virtio.Net;

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
        Rx = new GuestDriver(Memory, 256, 0x1000, 0x2000, 0x3000);
        Tx = new GuestDriver(Memory, 256, 0x4000, 0x5000, 0x6000);
        Rx.Configure(RxQ);
        Tx.Configure(TxQ);
        ulong acked = features ?? (VirtioFeatures.Version1 | (1UL << NetConstants.FeatureMac));
        Mergeable = (acked & (1UL << NetConstants.FeatureMrgRxbuf)) != 0;
        if (activate)
            Assert.True(Device.Activate(Memory, [RxQ, TxQ], Interrupt, acked));
    }

    /// <summary>The features acked include MRG_RXBUF: a received frame may span several used buffers.</summary>
    public bool Mergeable { get; }

    /// <summary>num_buffers of the last frame <see cref="TakeRx"/> returned.</summary>
    public int LastNumBuffers { get; private set; }

    public NetnsTap Ns { get; }
    public GuestMemory Memory { get; }
    public VirtioNet Device { get; }
    public CountingInterrupt Line { get; }
    public VirtioInterrupt Interrupt { get; }
    public VirtQueue RxQ { get; }
    public VirtQueue TxQ { get; }
    public GuestDriver Rx { get; }
    public GuestDriver Tx { get; }

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

    /// <summary>
    /// Frames (virtio header stripped) the device completed on the rx queue since the last call. Like a driver,
    /// reads num_buffers from each frame's first buffer and joins that many used buffers (always 1 without MRG_RXBUF).
    /// </summary>
    public List<byte[]> TakeRx()
    {
        var frames = new List<byte[]>();
        var used = Rx.TakeUsed();
        for (int u = 0; u < used.Count; u++)
        {
            var first = ReadUsed(used[u]);
            Assert.True(first.Length >= 12);
            int numBuffers = BinaryPrimitives.ReadUInt16LittleEndian(first.AsSpan(10));
            if (!Mergeable) Assert.Equal(1, numBuffers);
            Assert.InRange(numBuffers, 1, used.Count - u); // all of a frame's buffers are published together
            var all = new List<byte>(first);
            for (int k = 1; k < numBuffers; k++) all.AddRange(ReadUsed(used[u + k]));
            u += numBuffers - 1;
            LastNumBuffers = numBuffers;
            frames.Add(all.ToArray()[12..]);
        }
        return frames;
    }

    private byte[] ReadUsed((ushort Id, uint Len) e)
    {
        var all = new byte[e.Len];
        int off = 0;
        foreach (var (a, l) in _rxBufs[e.Id])
        {
            int c = (int)Math.Min(l, e.Len - (uint)off);
            if (c <= 0) break;
            Memory.Read(a, all.AsSpan(off, c));
            off += c;
        }
        return all;
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
