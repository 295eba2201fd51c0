using System.Buffers.Binary;
using System.Net.Sockets;
using Flint.Devices;
using Flint.Devices.Virtio;
using Flint.Devices.Virtio.Vsock;
using static Flint.Devices.Virtio.Vsock.VsockConstants;

namespace Flint.Fuzz.Targets;

/// <summary>
/// virtio-vsock (guest CID 3) with a host service listening on <c>UDS_1234</c> that accepts, greets and drains, so a
/// guest REQUEST to port 1234 makes a real connection and one to any other port is refused. The per-connection fds
/// the device registers are kept and their handlers run after each round, readable and writable or not (spurious
/// wake-ups are allowed by epoll, and a guest paces everything else).
/// </summary>
public sealed class VsockTarget : DeviceTarget
{
    public const uint ServicePort = 1234;

    private sealed class Registrar : IEventRegistrar
    {
        public readonly Dictionary<int, EventSource> Sources = new();
        public void Add(EventSource source) => Sources[source.Fd] = source;
        public void Remove(int fd) => Sources.Remove(fd);
    }

    private readonly Registrar _registrar = new();
    private readonly List<EventSource> _ready = new();

    public override string Name => "virtio-vsock";
    public override string Description => "VirtioVsock (CID 3, a host UDS service on port 1234) rx/tx/event queues over guest memory built from the input, then the connection fd handlers";

    protected override VirtioDevice CreateDevice()
    {
        string uds = Path.Combine(Path.GetTempPath(), $"flint-fuzz-vsock-{Environment.ProcessId}.sock");
        File.Delete(uds);
        File.Delete($"{uds}_{ServicePort}");
        StartService($"{uds}_{ServicePort}");
        var dev = new VirtioVsock(3, uds, _registrar) { ConnectionTimeout = TimeSpan.FromMilliseconds(50) };
        AppDomain.CurrentDomain.ProcessExit += (_, _) => { dev.Dispose(); File.Delete(uds); File.Delete($"{uds}_{ServicePort}"); };
        return dev;
    }

    private static void StartService(string path)
    {
        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(512);
        var t = new Thread(() =>
        {
            while (true)
            {
                var s = listener.Accept();
                ThreadPool.QueueUserWorkItem(_ =>
                {
                    try
                    {
                        s.Send("hello from the host\n"u8);
                        var buf = new byte[65536];
                        while (s.Receive(buf) > 0) { }
                    }
                    catch (SocketException) { }
                    finally { s.Dispose(); }
                });
            }
        })
        { IsBackground = true, Name = "vsock-fuzz-service" };
        t.Start();
    }

    protected override void AfterRound(VirtioDevice device)
    {
        _ready.Clear();
        _ready.AddRange(_registrar.Sources.Values);
        foreach (var s in _ready) s.OnReady(Flint.Sys.Libc.EPOLLIN | 4 /* EPOLLOUT */);
    }

    private static byte[] Packet(ushort op, uint srcPort, uint dstPort, ReadOnlySpan<byte> payload = default, ulong srcCid = 3, ulong dstCid = HostCid, uint flags = 0)
    {
        var p = new byte[HeaderSize + payload.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(p.AsSpan(OffSrcCid), srcCid);
        BinaryPrimitives.WriteUInt64LittleEndian(p.AsSpan(OffDstCid), dstCid);
        BinaryPrimitives.WriteUInt32LittleEndian(p.AsSpan(OffSrcPort), srcPort);
        BinaryPrimitives.WriteUInt32LittleEndian(p.AsSpan(OffDstPort), dstPort);
        BinaryPrimitives.WriteUInt32LittleEndian(p.AsSpan(OffLen), (uint)payload.Length);
        BinaryPrimitives.WriteUInt16LittleEndian(p.AsSpan(OffType), TypeStream);
        BinaryPrimitives.WriteUInt16LittleEndian(p.AsSpan(OffOp), op);
        BinaryPrimitives.WriteUInt32LittleEndian(p.AsSpan(OffFlags), flags);
        BinaryPrimitives.WriteUInt32LittleEndian(p.AsSpan(OffBufAlloc), 65536);
        payload.CopyTo(p.AsSpan(HeaderSize));
        return p;
    }

    public override IEnumerable<(string, byte[])> Seeds()
    {
        var b = new ImageBuilder();
        for (int i = 0; i < 4; i++) b.Chain(RxQueue, (b.Buffer([], 1024), 1024, true));
        var req = Packet(OpRequest, 5000, ServicePort);
        var rw = Packet(OpRw, 5000, ServicePort, "GET / HTTP/1.0\r\n\r\n"u8);
        var shut = Packet(OpShutdown, 5000, ServicePort, flags: ShutdownRcv | ShutdownSend);
        b.Chain(TxQueue, (b.Buffer(req), (uint)req.Length, false));
        b.Chain(TxQueue, (b.Buffer(rw.AsSpan(0, HeaderSize)), HeaderSize, false), (b.Buffer(rw.AsSpan(HeaderSize)), (uint)(rw.Length - HeaderSize), false));
        b.Chain(TxQueue, (b.Buffer(shut), (uint)shut.Length, false));
        yield return ("connect-write-shutdown", b.Build(~0UL, control: 3));

        b = new ImageBuilder();
        for (int i = 0; i < 2; i++) b.Chain(RxQueue, (b.Buffer([], 128), 128, true));
        var refused = Packet(OpRequest, 6000, 4321);
        var stray = Packet(OpRw, 7000, ServicePort, "x"u8);
        var credit = Packet(6 /* CREDIT_UPDATE */, 5000, ServicePort);
        b.Chain(TxQueue, (b.Buffer(refused), (uint)refused.Length, false));
        b.Chain(TxQueue, (b.Buffer(stray), (uint)stray.Length, false));
        b.Chain(TxQueue, (b.Buffer(credit), (uint)credit.Length, false));
        b.Chain(EventQueue, (b.Buffer([], 4), 4, true));
        yield return ("refused-stray-credit", b.Build(~0UL, control: 1));
    }
}
