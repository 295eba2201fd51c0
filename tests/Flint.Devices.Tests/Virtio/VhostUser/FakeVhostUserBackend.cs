using System.Buffers.Binary;
using System.Net.Sockets;

namespace Flint.Devices.Tests.Virtio.VhostUser;

/// <summary>
/// A scripted, hostile vhost-user backend on a real Unix socket: it accepts one connection and runs
/// <see cref="Script"/> on it (on its own thread), which reads the front-end's messages and answers whatever the test
/// wants: nothing, garbage, half a message, a hang-up.
/// </summary>
public sealed class FakeVhostUserBackend : IDisposable
{
    private readonly Socket _listener;
    private readonly Thread _thread;
    private Socket? _conn;

    public FakeVhostUserBackend(Action<FakeVhostUserBackend> script)
    {
        Dir = Directory.CreateTempSubdirectory("flint-vu-fake-").FullName;
        SocketPath = Path.Combine(Dir, "fake.sock");
        _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _listener.Bind(new UnixDomainSocketEndPoint(SocketPath));
        _listener.Listen(1);
        _thread = new Thread(() =>
        {
            try
            {
                _conn = _listener.Accept();
                script(this);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
        })
        { IsBackground = true };
        _thread.Start();
    }

    public string Dir { get; }
    public string SocketPath { get; }
    public List<uint> Received { get; } = [];

    /// <summary>Reads one front-end message (header and payload); null when the front-end closed.</summary>
    public (uint Request, uint Flags, byte[] Payload)? ReadMessage()
    {
        var h = new byte[12];
        if (!ReadExact(h)) return null;
        uint req = BinaryPrimitives.ReadUInt32LittleEndian(h), flags = BinaryPrimitives.ReadUInt32LittleEndian(h.AsSpan(4));
        var p = new byte[BinaryPrimitives.ReadUInt32LittleEndian(h.AsSpan(8))];
        if (!ReadExact(p)) return null;
        lock (Received) Received.Add(req);
        return (req, flags, p);
    }

    /// <summary>Reads messages until one with <paramref name="request"/> arrives.</summary>
    public bool ReadUntil(uint request)
    {
        while (ReadMessage() is { } m)
            if (m.Request == request) return true;
        return false;
    }

    private bool ReadExact(byte[] buf)
    {
        int got = 0;
        while (got < buf.Length)
        {
            int n = _conn!.Receive(buf, got, buf.Length - got, SocketFlags.None);
            if (n == 0) return false;
            got += n;
        }
        return true;
    }

    /// <summary>An answer: header (request, flags, size) then the payload as given.</summary>
    public void Answer(uint request, uint flags, uint size, ReadOnlySpan<byte> payload)
    {
        var m = new byte[12 + payload.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(m, request);
        BinaryPrimitives.WriteUInt32LittleEndian(m.AsSpan(4), flags);
        BinaryPrimitives.WriteUInt32LittleEndian(m.AsSpan(8), size);
        payload.CopyTo(m.AsSpan(12));
        _conn!.Send(m);
    }

    /// <summary>A well-formed u64 answer.</summary>
    public void AnswerU64(uint request, ulong value)
    {
        Span<byte> p = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(p, value);
        Answer(request, 5, 8, p);
    }

    public void SendRaw(ReadOnlySpan<byte> bytes) => _conn!.Send(bytes);

    public void Close() => _conn?.Close();

    /// <summary>Blocks the script until the test is over (a backend that just stops talking).</summary>
    public ManualResetEventSlim Release { get; } = new();

    public void Dispose()
    {
        Release.Set();
        try { _conn?.Close(); } catch (ObjectDisposedException) { }
        _listener.Close();
        _thread.Join(5000);
        try { Directory.Delete(Dir, true); } catch (IOException) { }
    }
}
