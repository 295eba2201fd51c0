using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;
using Flint.Devices.Virtio;
using Flint.Devices.Virtio.Vsock;
using Flint.Memory;
using Flint.Sys;
using static Flint.Devices.Virtio.Vsock.VsockConstants;

namespace Flint.Devices.Tests.Virtio.Vsock;

/// <summary>
/// A stand-in for the VMM event loop: an epoll thread that dispatches registered fds, thread-safe so the test can
/// assert on it. Handler exceptions are recorded (a device must never let one escape).
/// </summary>
public sealed class TestLoop : IEventRegistrar, IDisposable
{
    private readonly Epoll _epoll = new();
    private readonly Lock _lock = new();
    private readonly List<Action<uint>?> _handlers = [];
    private readonly Dictionary<int, int> _tokenByFd = [];
    private readonly Thread _thread;
    private volatile bool _stop;

    public TestLoop()
    {
        _thread = new Thread(Run) { IsBackground = true, Name = "vsock-test-loop" };
    }

    public List<Exception> Errors { get; } = [];
    public long Dispatches;
    /// <summary>Managed bytes allocated on the loop thread inside handlers (the device's own work).</summary>
    public long HandlerAllocatedBytes;
    public int AddCount;
    public int Registered { get { lock (_lock) return _tokenByFd.Count; } }

    public void Start() => _thread.Start();

    public void Add(EventSource source)
    {
        lock (_lock)
        {
            AddCount++;
            int token = _handlers.Count;
            _handlers.Add(source.OnReady);
            try
            {
                _epoll.Add(source.Fd, (ulong)token, source.Events);
                _tokenByFd[source.Fd] = token;
            }
            catch (Exception e) { Errors.Add(e); }
        }
    }

    public void Remove(int fd)
    {
        lock (_lock)
        {
            if (!_tokenByFd.Remove(fd, out int token)) return;
            _handlers[token] = null;
            try { _epoll.Remove(fd); } catch (Exception e) { Errors.Add(e); }
        }
    }

    public bool IsRegistered(int fd) { lock (_lock) return _tokenByFd.ContainsKey(fd); }

    private void Run()
    {
        var events = new EpollEvent[64];
        while (!_stop)
        {
            int n;
            try { n = _epoll.Wait(events, 20); } catch (Exception) { return; }
            for (int i = 0; i < n; i++)
            {
                Action<uint>? h;
                lock (_lock) h = _handlers[(int)events[i].Data];
                if (h == null) continue;
                Interlocked.Increment(ref Dispatches);
                long before = GC.GetAllocatedBytesForCurrentThread();
                try { h(events[i].Events); }
                catch (Exception e) { lock (_lock) Errors.Add(e); }
                Interlocked.Add(ref HandlerAllocatedBytes, GC.GetAllocatedBytesForCurrentThread() - before);
            }
        }
    }

    public void Dispose()
    {
        _stop = true;
        if (_thread.IsAlive) _thread.Join();
        _epoll.Dispose();
    }
}

/// <summary>A packet as the guest driver saw it.</summary>
public sealed record VsockPacket(ulong SrcCid, ulong DstCid, uint SrcPort, uint DstPort, uint Len, ushort Type, ushort Op,
    uint Flags, uint BufAlloc, uint FwdCnt, byte[] Payload)
{
    public override string ToString() => $"op={Op} {SrcCid}:{SrcPort}->{DstCid}:{DstPort} len={Len} flags={Flags} buf={BufAlloc} fwd={FwdCnt}";
}

/// <summary>
/// Plays the guest's virtio-vsock driver over a real GuestMemory: three split queues with their own rings, rx
/// buffers kept posted (each descriptor owns a fixed 64 KiB slot, so nothing is allocated in guest memory as the
/// test runs), tx packets built as header + payload descriptors. Queue notifications go through eventfds the
/// test loop polls, so the device only ever runs on the loop thread, as in the VMM.
/// </summary>
public sealed class VsockGuest
{
    public const ushort Size = 64;
    public const ulong SlotSize = 0x10000;

    private readonly GuestMemory _mem;
    private readonly QueueState[] _q = new QueueState[3];
    private readonly EventFd[] _doorbells;

    /// <summary>One queue: its rings (written and read through the shared <see cref="GuestDriver"/>), its data slots,
    /// and which descriptors are free or in which published chain.</summary>
    private sealed class QueueState
    {
        public required GuestDriver Ring;
        public ulong Data;
        public ushort LastUsed;
        public readonly Stack<ushort> Free = new();
        public readonly Dictionary<ushort, ushort[]> Chains = new();
    }

    public VsockGuest(GuestMemory mem, EventFd[] doorbells)
    {
        _mem = mem;
        _doorbells = doorbells;
        for (int i = 0; i < 3; i++)
        {
            var s = new QueueState
            {
                Ring = GuestDriver.At(mem, 0x10000UL * (ulong)(i + 1), Size), // desc, avail +4 KiB, used +8 KiB
                Data = 0x100000UL + (ulong)i * Size * SlotSize,
            };
            for (int d = Size - 1; d >= 0; d--) s.Free.Push((ushort)d);
            _q[i] = s;
        }
    }

    public static ulong MemoryNeeded => 0x100000UL + 3UL * Size * SlotSize;

    public ulong Cid { get; set; } = 3;
    public int RxBufSize { get; set; } = 4096;
    /// <summary>Linux before 6.x: rx buffers as a 44-byte header descriptor plus a data descriptor.</summary>
    public bool SplitRx { get; set; }

    public void Configure(VirtQueue q, int i) => _q[i].Ring.Configure(q);

    public void Kick(int q) => _doorbells[q].Write(1);

    public void PublishHead(int q, ushort head) => Publish(q, head);

    /// <summary>Address of descriptor <paramref name="d"/>'s fixed data slot on queue <paramref name="q"/>.</summary>
    public ulong Slot(int q, ushort d) => SlotAddr(q, d);

    public int FreeDescriptors(int q) => _q[q].Free.Count;

    private ulong SlotAddr(int q, ushort d) => _q[q].Data + d * SlotSize;

    public void WriteDesc(int q, ushort index, ulong addr, uint len, ushort flags, ushort next) =>
        _q[q].Ring.SetDesc(index, addr, len, flags, next);

    private void Publish(int q, ushort head) => _q[q].Ring.Publish(head);

    private ushort UsedIdx(int q) => _q[q].Ring.UsedIdx;

    /// <summary>Builds a chain over fresh descriptors whose slots hold <paramref name="bufs"/> (null data: a write-only buffer of that length).</summary>
    public ushort? PushChain(int q, params (byte[]? Data, uint Len, bool Write)[] bufs)
    {
        var head = BuildChain(q, bufs);
        if (head is { } h) Publish(q, h);
        return head;
    }

    /// <summary>Like <see cref="PushChain"/> but unpublished, so a test can corrupt it first (<see cref="WriteDesc"/>), then <see cref="PublishHead"/>.</summary>
    public ushort? BuildChain(int q, params (byte[]? Data, uint Len, bool Write)[] bufs)
    {
        ReclaimTx();
        var s = _q[q];
        if (s.Free.Count < bufs.Length) return null;
        var idx = new ushort[bufs.Length];
        for (int i = 0; i < bufs.Length; i++) idx[i] = s.Free.Pop();
        for (int i = 0; i < bufs.Length; i++)
        {
            ulong a = SlotAddr(q, idx[i]);
            if (bufs[i].Data is { } data) _mem.Write(a, data.AsSpan(0, (int)Math.Min((uint)data.Length, SlotSize)));
            bool last = i + 1 == bufs.Length;
            WriteDesc(q, idx[i], a, bufs[i].Len, (ushort)((bufs[i].Write ? Descriptor.FlagWrite : 0) | (last ? 0 : Descriptor.FlagNext)),
                last ? (ushort)0 : idx[i + 1]);
        }
        s.Chains[idx[0]] = idx;
        return idx[0];
    }

    /// <summary>Posts rx buffers until the rx queue's descriptors run out or <paramref name="max"/> are posted.</summary>
    public int PostRx(int max = int.MaxValue)
    {
        int n = 0;
        int per = SplitRx ? 2 : 1;
        while (n < max && _q[0].Free.Count >= per)
        {
            if (SplitRx) PushChain(0, (null, HeaderSize, true), (null, (uint)RxBufSize, true));
            else PushChain(0, (null, (uint)(HeaderSize + RxBufSize), true));
            n++;
        }
        return n;
    }

    /// <summary>Takes completed tx chains back so their descriptors can carry new packets.</summary>
    public int ReclaimTx()
    {
        var s = _q[1];
        int n = 0;
        ushort used = UsedIdx(1);
        while (s.LastUsed != used)
        {
            ushort id = (ushort)s.Ring.Used(s.LastUsed).Id;
            if (s.Chains.Remove(id, out var chain)) foreach (var d in chain) s.Free.Push(d);
            s.LastUsed++;
            n++;
        }
        return n;
    }

    public ushort TxCompleted => UsedIdx(1);

    /// <summary>Posts one device-writable event buffer of <paramref name="len"/> bytes on the event queue; returns its head.</summary>
    public ushort PostEvent(uint len = 4) => PushChain(2, (null, len, true)) ?? throw new InvalidOperationException("event descriptors used up");

    /// <summary>The next used entry of the event queue (its id, length and the first four bytes of its buffer), if any.</summary>
    public (ushort Id, uint Len, uint Event)? TryTakeEvent()
    {
        var s = _q[2];
        if (s.LastUsed == UsedIdx(2)) return null;
        var (id32, len) = s.Ring.Used(s.LastUsed);
        ushort id = (ushort)id32;
        s.LastUsed++;
        if (s.Chains.Remove(id, out var chain)) foreach (var d in chain) s.Free.Push(d);
        return (id, len, _mem.Read<uint>(SlotAddr(2, id)));
    }

    /// <summary>One completed rx packet, if any; its buffer is reposted and the rx queue kicked.</summary>
    public VsockPacket? TryRecv(bool repost = true)
    {
        var s = _q[0];
        ushort used = UsedIdx(0);
        if (s.LastUsed == used) return null;
        var (id32, len) = s.Ring.Used(s.LastUsed);
        ushort id = (ushort)id32;
        s.LastUsed++;
        var chain = s.Chains[id];
        s.Chains.Remove(id);
        // Linearise the chain's bytes.
        var bytes = new byte[len];
        int off = 0;
        foreach (var d in chain)
        {
            ulong a = _mem.Read<ulong>(s.Ring.Desc + 16UL * d);
            uint dl = _mem.Read<uint>(s.Ring.Desc + 16UL * d + 8);
            int take = (int)Math.Min(dl, len - (uint)off);
            if (take <= 0) break;
            _mem.Read(a, bytes.AsSpan(off, take));
            off += take;
        }
        foreach (var d in chain) s.Free.Push(d);
        if (repost) { PostRx(); Kick(0); }
        if (len < HeaderSize) return new VsockPacket(0, 0, 0, 0, 0, 0, 0xffff, 0, 0, 0, bytes);
        var h = bytes.AsSpan();
        uint plen = BinaryPrimitives.ReadUInt32LittleEndian(h[OffLen..]);
        var payload = bytes.AsSpan(HeaderSize, (int)Math.Min(plen, len - HeaderSize)).ToArray();
        return new VsockPacket(
            BinaryPrimitives.ReadUInt64LittleEndian(h[OffSrcCid..]), BinaryPrimitives.ReadUInt64LittleEndian(h[OffDstCid..]),
            BinaryPrimitives.ReadUInt32LittleEndian(h[OffSrcPort..]), BinaryPrimitives.ReadUInt32LittleEndian(h[OffDstPort..]),
            plen, BinaryPrimitives.ReadUInt16LittleEndian(h[OffType..]), BinaryPrimitives.ReadUInt16LittleEndian(h[OffOp..]),
            BinaryPrimitives.ReadUInt32LittleEndian(h[OffFlags..]), BinaryPrimitives.ReadUInt32LittleEndian(h[OffBufAlloc..]),
            BinaryPrimitives.ReadUInt32LittleEndian(h[OffFwdCnt..]), payload);
    }

    public VsockPacket Recv(int timeoutMs = 5000, bool repost = true)
    {
        long end = Environment.TickCount64 + timeoutMs;
        var spin = new SpinWait();
        while (true)
        {
            var p = TryRecv(repost);
            if (p != null) return p;
            if (Environment.TickCount64 > end) throw new TimeoutException("no rx packet from the device");
            spin.SpinOnce(sleep1Threshold: -1);
            if (spin.Count > 200) Thread.Sleep(1);
        }
    }

    /// <summary>Waits for a packet matching <paramref name="pred"/>, skipping others into <paramref name="skipped"/>.</summary>
    public VsockPacket RecvWhere(Func<VsockPacket, bool> pred, List<VsockPacket>? skipped = null, int timeoutMs = 5000)
    {
        long end = Environment.TickCount64 + timeoutMs;
        while (true)
        {
            int left = (int)Math.Max(1, end - Environment.TickCount64);
            var p = Recv(left);
            if (pred(p)) return p;
            skipped?.Add(p);
        }
    }

    /// <summary>Asserts nothing arrives for <paramref name="ms"/>.</summary>
    public VsockPacket? RecvNone(int ms)
    {
        try { return Recv(ms); } catch (TimeoutException) { return null; }
    }

    public static byte[] Header(ulong srcCid, ulong dstCid, uint srcPort, uint dstPort, uint len, ushort op,
        uint flags = 0, uint bufAlloc = 65536, uint fwdCnt = 0, ushort type = TypeStream)
    {
        var h = new byte[HeaderSize];
        BinaryPrimitives.WriteUInt64LittleEndian(h.AsSpan(OffSrcCid), srcCid);
        BinaryPrimitives.WriteUInt64LittleEndian(h.AsSpan(OffDstCid), dstCid);
        BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(OffSrcPort), srcPort);
        BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(OffDstPort), dstPort);
        BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(OffLen), len);
        BinaryPrimitives.WriteUInt16LittleEndian(h.AsSpan(OffType), type);
        BinaryPrimitives.WriteUInt16LittleEndian(h.AsSpan(OffOp), op);
        BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(OffFlags), flags);
        BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(OffBufAlloc), bufAlloc);
        BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(OffFwdCnt), fwdCnt);
        return h;
    }

    /// <summary>Sends one well-formed packet from the guest (header descriptor + optional payload descriptor) and kicks tx.</summary>
    public void Send(uint srcPort, uint dstPort, ushort op, byte[]? payload = null, uint flags = 0, uint bufAlloc = 65536, uint fwdCnt = 0)
    {
        var h = Header(Cid, HostCid, srcPort, dstPort, (uint)(payload?.Length ?? 0), op, flags, bufAlloc, fwdCnt);
        SendRaw(h, payload);
    }

    public void SendRaw(byte[] header, byte[]? payload = null, uint? headerDescLen = null, uint? payloadDescLen = null)
    {
        long end = Environment.TickCount64 + 5000;
        while (true)
        {
            ushort? head = payload is { Length: > 0 }
                ? PushChain(1, (header, headerDescLen ?? (uint)header.Length, false), (payload, payloadDescLen ?? (uint)payload.Length, false))
                : PushChain(1, (header, headerDescLen ?? (uint)header.Length, false));
            if (head != null) break;
            if (Environment.TickCount64 > end) throw new TimeoutException("tx descriptors never came back");
            Thread.Sleep(1);
        }
        Kick(1);
    }

    /// <summary>
    /// Overwrites, in guest memory, every tx buffer that starts with <paramref name="original"/> (a header already sent)
    /// with <paramref name="replacement"/>: a vCPU rewriting its packet while the device works on it. Returns how many.
    /// </summary>
    public int OverwriteTx(byte[] original, byte[] replacement)
    {
        int n = 0;
        var cur = new byte[original.Length];
        for (ushort d = 0; d < Size; d++)
        {
            _mem.Read(SlotAddr(1, d), cur);
            if (!cur.AsSpan().SequenceEqual(original)) continue;
            _mem.Write(SlotAddr(1, d), replacement);
            n++;
        }
        return n;
    }

    /// <summary>Waits until the device has consumed every tx chain published so far.</summary>
    public void WaitTxDone(int timeoutMs = 5000)
    {
        long end = Environment.TickCount64 + timeoutMs;
        while (UsedIdx(1) != _q[1].Ring.AvailIdx)
        {
            if (Environment.TickCount64 > end) throw new TimeoutException("tx not consumed");
            Thread.Sleep(1);
        }
    }
}

/// <summary>
/// A vsock device on a temp Unix socket path, activated on a VsockGuest's three queues, driven by a TestLoop thread.
/// </summary>
public sealed class VsockHarness : IDisposable
{
    public const ulong GuestCid = 3;

    public VsockHarness(int rxBuffers = 32, bool splitRx = false) : this(rxBuffers, splitRx, wrapBackend: null)
    {
    }

    /// <summary>
    /// With <paramref name="wrapBackend"/>, the device runs over the Unix-socket muxer as wrapped by it (a
    /// decorator that watches or interferes); without, it is built the way the VMM builds it.
    /// </summary>
    internal VsockHarness(int rxBuffers, bool splitRx, Func<IVsockBackend, IVsockBackend>? wrapBackend)
    {
        Dir = Path.Combine(Path.GetTempPath(), "vsk-" + Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(Dir);
        UdsPath = Path.Combine(Dir, "v.sock");
        Memory = GuestMemory.Create([(0UL, VsockGuest.MemoryNeeded)]);
        Loop = new TestLoop();
        if (wrapBackend == null)
        {
            Device = new VirtioVsock(GuestCid, UdsPath, Loop) { ConnectionTimeout = TimeSpan.FromMilliseconds(300) };
        }
        else
        {
            var muxer = new VsockMuxer(UdsPath, Loop) { ConnectionTimeout = TimeSpan.FromMilliseconds(300) };
            Device = new VirtioVsock(GuestCid, wrapBackend(muxer));
        }
        Doorbells = [new EventFd(), new EventFd(), new EventFd()];
        Guest = new VsockGuest(Memory, Doorbells) { SplitRx = splitRx };
        Line = new CountingInterrupt();
        Interrupt = new VirtioInterrupt(Line);
        Queues = [new VirtQueue(QueueSize), new VirtQueue(QueueSize), new VirtQueue(QueueSize)];
        for (int i = 0; i < 3; i++) Guest.Configure(Queues[i], i);
        Assert.True(Device.Activate(Memory, Queues, Interrupt, Device.AvailableFeatures));
        foreach (var s in Device.EventSources) Loop.Add(s);
        for (int i = 0; i < 3; i++)
        {
            int q = i;
            var fd = Doorbells[i];
            Loop.Add(new EventSource(fd.Fd, _ => { fd.Read(); Device.ProcessQueue(q); }));
        }
        Loop.Start();
        if (rxBuffers > 0)
        {
            Guest.PostRx(rxBuffers);
            Guest.Kick(0);
        }
    }

    public string Dir { get; }
    public string UdsPath { get; }
    public GuestMemory Memory { get; }
    public TestLoop Loop { get; }
    public VirtioVsock Device { get; }
    public EventFd[] Doorbells { get; }
    public VsockGuest Guest { get; }
    public CountingInterrupt Line { get; }
    public VirtioInterrupt Interrupt { get; }
    public VirtQueue[] Queues { get; }

    public Socket ConnectHost()
    {
        var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified) { ReceiveTimeout = 5000, SendTimeout = 5000 };
        s.Connect(new UnixDomainSocketEndPoint(UdsPath));
        return s;
    }

    public Socket ListenGuestPort(uint port)
    {
        var l = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        l.Bind(new UnixDomainSocketEndPoint($"{UdsPath}_{port}"));
        l.Listen(64);
        return l;
    }

    public static string ReadLine(Socket s)
    {
        var sb = new StringBuilder();
        var b = new byte[1];
        while (true)
        {
            int n = s.Receive(b);
            if (n == 0) throw new EndOfStreamException($"closed after '{sb}'");
            if (b[0] == '\n') return sb.ToString();
            sb.Append((char)b[0]);
        }
    }

    public static byte[] ReadExactly(Socket s, int n)
    {
        var buf = new byte[n];
        int got = 0;
        while (got < n)
        {
            int r = s.Receive(buf, got, n - got, SocketFlags.None);
            if (r == 0) throw new EndOfStreamException($"closed after {got}/{n} bytes");
            got += r;
        }
        return buf;
    }

    /// <summary>True when the peer closed (EOF or reset) within the timeout.</summary>
    public static bool WaitClosed(Socket s, int timeoutMs = 5000)
    {
        s.ReceiveTimeout = timeoutMs;
        var b = new byte[256];
        try
        {
            while (true)
            {
                if (s.Receive(b) == 0) return true;
            }
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset) { return true; }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.TimedOut || e.SocketErrorCode == SocketError.WouldBlock) { return false; }
    }

    /// <summary>Host-initiated connect: CONNECT line, guest REQUEST, guest RESPONSE, OK line. Returns (socket, host port).</summary>
    public (Socket Host, uint HostPort) OpenHostInitiated(uint guestPort, uint guestBufAlloc = 65536)
    {
        var s = ConnectHost();
        s.Send(Encoding.ASCII.GetBytes($"CONNECT {guestPort}\n"));
        var req = Guest.RecvWhere(p => p.Op == OpRequest && p.DstPort == guestPort);
        Assert.Equal(HostCid, req.SrcCid);
        Assert.Equal(GuestCid, req.DstCid);
        Assert.True(req.SrcPort >= FirstEphemeralPort);
        Guest.Send(guestPort, req.SrcPort, OpResponse, bufAlloc: guestBufAlloc);
        Assert.Equal($"OK {req.SrcPort}", ReadLine(s));
        return (s, req.SrcPort);
    }

    /// <summary>Guest-initiated connect to a listener at uds_path_port. Returns the accepted host socket.</summary>
    public Socket OpenGuestInitiated(Socket listener, uint guestPort, uint hostPort, uint guestBufAlloc = 65536)
    {
        Guest.Send(guestPort, hostPort, OpRequest, bufAlloc: guestBufAlloc);
        var resp = Guest.RecvWhere(p => p.DstPort == guestPort && p.SrcPort == hostPort);
        Assert.Equal(OpResponse, resp.Op);
        var s = listener.Accept();
        s.ReceiveTimeout = 5000;
        return s;
    }

    /// <summary>Collects RW payload for one connection until <paramref name="n"/> bytes arrived.</summary>
    public byte[] GuestReadData(uint guestPort, int n, int timeoutMs = 5000)
    {
        var ms = new MemoryStream();
        while (ms.Length < n)
        {
            var p = Guest.RecvWhere(x => x.DstPort == guestPort && x.Op == OpRw, timeoutMs: timeoutMs);
            ms.Write(p.Payload);
        }
        return ms.ToArray();
    }

    public void AssertHealthy()
    {
        lock (Loop.Errors) Assert.Empty(Loop.Errors);
        Assert.Equal(0, Device.Metrics.ConnEventFails);
        Assert.Equal(0, Device.Metrics.TxQueueEventFails);
        Assert.Equal(0, Device.Metrics.MuxerEventFails);
    }

    public void Dispose()
    {
        Loop.Dispose();
        Device.Dispose();
        foreach (var d in Doorbells) d.Dispose();
        Memory.Dispose();
        try { Directory.Delete(Dir, true); } catch (IOException) { }
    }
}
