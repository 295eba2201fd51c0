using System.Buffers.Binary;
using Flint.Sys;

namespace Flint.Devices.Virtio.VhostUser;

/// <summary>
/// The front-end side of one vhost-user connection (Firecracker's VhostUserHandle over the vhost crate's Frontend):
/// it sends the requests a block device needs and reads the backend's answers. The backend is another process and
/// is not trusted: every answer is read once into a local buffer, its header checked (the request echoed, version 1,
/// the reply flag, exactly the size that request's answer has) before any field is used, and every read is bounded by
/// the receive timeout. A backend that answers garbage or late breaks the connection for good (the byte stream can
/// no longer be trusted to be in step), and each later request fails at once with the same reason.
/// <para>Requests without an answer (the SET_* ones; REPLY_ACK is never negotiated, as in Firecracker) are a single
/// non-blocking sendmsg, so the vCPU thread that activates the device never waits on the backend.</para>
/// <para>Thread-safe: the VMM thread (build, PATCH) and a vCPU thread (activation) may use it; one lock keeps each
/// request and its answer together.</para>
/// </summary>
public sealed class VhostUserFrontend : IDisposable
{
    /// <summary>How long one answer may take by default; Firecracker's frontend waits forever, Flint does not.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(5);

    private readonly Lock _lock = new();
    private BoundedUnixStream? _stream;
    private string? _brokenReason;

    private VhostUserFrontend(BoundedUnixStream stream, string socketPath)
    {
        _stream = stream;
        SocketPath = socketPath;
    }

    public string SocketPath { get; }

    /// <summary>Whether the connection is still usable (false after a failure or <see cref="Dispose"/>).</summary>
    public bool IsConnected { get { lock (_lock) return _stream != null; } }

    /// <summary>Connects to the backend's socket; throws Firecracker's "Failed to connect to UDS Unix stream: ..." text.</summary>
    public static VhostUserFrontend Connect(string socketPath, TimeSpan? timeout = null)
    {
        var stream = BoundedUnixStream.Connect(socketPath, timeout ?? DefaultTimeout, out int errno);
        if (stream == null) throw new VhostUserException($"Failed to connect to UDS Unix stream: {Libc.StrError(errno)} (os error {errno})");
        return new VhostUserFrontend(stream, socketPath);
    }

    public void SetOwner() => Send(VhostUserRequest.SetOwner, []);

    public ulong GetFeatures() => GetU64(VhostUserRequest.GetFeatures);

    public void SetFeatures(ulong features) => SendU64(VhostUserRequest.SetFeatures, features);

    public ulong GetProtocolFeatures() => GetU64(VhostUserRequest.GetProtocolFeatures);

    public void SetProtocolFeatures(ulong features) => SendU64(VhostUserRequest.SetProtocolFeatures, features);

    /// <summary>
    /// Firecracker's negotiate_features: the virtio features both sides have; when that includes protocol features,
    /// the protocol features both sides have, which are then set. Returns (acked features, acked protocol features).
    /// </summary>
    public (ulong Features, ulong ProtocolFeatures) NegotiateFeatures(ulong available, ulong availableProtocol)
    {
        ulong acked = available & GetFeatures();
        ulong ackedProtocol = 0;
        if ((acked & VhostUserRequest.ProtocolFeaturesBit) != 0)
        {
            ackedProtocol = availableProtocol & GetProtocolFeatures();
            SetProtocolFeatures(ackedProtocol);
        }
        return (acked, ackedProtocol);
    }

    /// <summary>
    /// GET_CONFIG for <paramref name="size"/> bytes from <paramref name="offset"/> (flags 0: Firecracker's WRITABLE).
    /// The answer must echo the offset and size; its payload is returned.
    /// </summary>
    public byte[] GetConfig(uint offset, uint size)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(size, (uint)(VhostUserRequest.MaxPayload - 12));
        var payload = new byte[12 + size];
        BinaryPrimitives.WriteUInt32LittleEndian(payload, offset);
        BinaryPrimitives.WriteUInt32LittleEndian(payload.AsSpan(4), size);
        var answer = Exchange(VhostUserRequest.GetConfig, payload, payload.Length);
        uint gotOffset = BinaryPrimitives.ReadUInt32LittleEndian(answer);
        uint gotSize = BinaryPrimitives.ReadUInt32LittleEndian(answer.AsSpan(4));
        if (gotOffset != offset || gotSize != size)
            lock (_lock) throw Broken(VhostUserRequest.GetConfig, $"the backend answered for {gotSize} bytes at offset {gotOffset}, not {size} at {offset}");
        return answer[12..];
    }

    /// <summary>One guest RAM region as SET_MEM_TABLE describes it, with the fd the backend maps it from.</summary>
    public readonly record struct MemoryRegion(ulong GuestAddress, ulong Size, ulong UserAddress, ulong FdOffset, int Fd);

    public void SetMemTable(ReadOnlySpan<MemoryRegion> regions)
    {
        if (regions.Length == 0 || regions.Length > BoundedUnixStream.MaxFds) throw new ArgumentOutOfRangeException(nameof(regions));
        var payload = new byte[8 + 32 * regions.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(payload, (uint)regions.Length);
        Span<int> fds = stackalloc int[regions.Length];
        for (int i = 0; i < regions.Length; i++)
        {
            var p = payload.AsSpan(8 + 32 * i);
            BinaryPrimitives.WriteUInt64LittleEndian(p, regions[i].GuestAddress);
            BinaryPrimitives.WriteUInt64LittleEndian(p[8..], regions[i].Size);
            BinaryPrimitives.WriteUInt64LittleEndian(p[16..], regions[i].UserAddress);
            BinaryPrimitives.WriteUInt64LittleEndian(p[24..], regions[i].FdOffset);
            fds[i] = regions[i].Fd;
        }
        Send(VhostUserRequest.SetMemTable, payload, fds);
    }

    public void SetVringNum(uint queue, ushort num) => SendVringState(VhostUserRequest.SetVringNum, queue, num);

    public void SetVringBase(uint queue, ushort nextAvail) => SendVringState(VhostUserRequest.SetVringBase, queue, nextAvail);

    public void SetVringEnable(uint queue, bool enable) => SendVringState(VhostUserRequest.SetVringEnable, queue, enable ? 1u : 0u);

    /// <summary>SET_VRING_ADDR with the rings' addresses in this process (the backend translates them through the memory table).</summary>
    public void SetVringAddr(uint queue, ulong descUserAddr, ulong usedUserAddr, ulong availUserAddr)
    {
        Span<byte> p = stackalloc byte[40];
        BinaryPrimitives.WriteUInt32LittleEndian(p, queue);
        BinaryPrimitives.WriteUInt32LittleEndian(p[4..], 0); // flags: no dirty logging
        BinaryPrimitives.WriteUInt64LittleEndian(p[8..], descUserAddr);
        BinaryPrimitives.WriteUInt64LittleEndian(p[16..], usedUserAddr);
        BinaryPrimitives.WriteUInt64LittleEndian(p[24..], availUserAddr);
        BinaryPrimitives.WriteUInt64LittleEndian(p[32..], 0); // log_guest_addr
        Send(VhostUserRequest.SetVringAddr, p);
    }

    /// <summary>The eventfd the guest's doorbell writes (a KVM ioeventfd): the backend polls it.</summary>
    public void SetVringKick(uint queue, int eventFd) => Send(VhostUserRequest.SetVringKick, U64(queue & 0xff), [eventFd]);

    /// <summary>The eventfd the backend writes when it used buffers (a KVM irqfd): the guest's interrupt.</summary>
    public void SetVringCall(uint queue, int eventFd) => Send(VhostUserRequest.SetVringCall, U64(queue & 0xff), [eventFd]);

    private void SendVringState(uint request, uint queue, uint num)
    {
        Span<byte> p = stackalloc byte[8];
        BinaryPrimitives.WriteUInt32LittleEndian(p, queue);
        BinaryPrimitives.WriteUInt32LittleEndian(p[4..], num);
        Send(request, p);
    }

    private static byte[] U64(ulong v)
    {
        var b = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(b, v);
        return b;
    }

    private void SendU64(uint request, ulong value) => Send(request, U64(value));

    private ulong GetU64(uint request) => BinaryPrimitives.ReadUInt64LittleEndian(Exchange(request, [], 8));

    private void Send(uint request, ReadOnlySpan<byte> payload, ReadOnlySpan<int> fds = default)
    {
        lock (_lock) SendLocked(request, payload, fds);
    }

    /// <summary>Sends a request and reads its answer, which must be exactly <paramref name="answerSize"/> payload bytes.</summary>
    private byte[] Exchange(uint request, ReadOnlySpan<byte> payload, int answerSize)
    {
        lock (_lock)
        {
            SendLocked(request, payload, default);
            Span<byte> header = stackalloc byte[VhostUserRequest.HeaderSize];
            int r = _stream!.ReceiveExact(header);
            if (r != 0) throw Broken(request, ReceiveFailure(r));
            uint gotRequest = BinaryPrimitives.ReadUInt32LittleEndian(header);
            uint flags = BinaryPrimitives.ReadUInt32LittleEndian(header[4..]);
            uint size = BinaryPrimitives.ReadUInt32LittleEndian(header[8..]);
            if (gotRequest != request)
                throw Broken(request, $"the backend answered request {gotRequest} instead");
            if ((flags & VhostUserRequest.VersionMask) != VhostUserRequest.Version || (flags & VhostUserRequest.ReplyFlag) == 0)
                throw Broken(request, $"the answer's flags 0x{flags:x} are not a version 1 reply");
            if (size != (uint)answerSize)
                throw Broken(request, $"the answer claims {size} payload bytes, not {answerSize}");
            var answer = new byte[answerSize];
            r = _stream.ReceiveExact(answer);
            if (r != 0) throw Broken(request, ReceiveFailure(r));
            return answer;
        }
    }

    private void SendLocked(uint request, ReadOnlySpan<byte> payload, ReadOnlySpan<int> fds)
    {
        if (_stream == null) throw new VhostUserException($"{VhostUserRequest.Name(request)} failed: {_brokenReason ?? "the connection is closed"}");
        Span<byte> msg = stackalloc byte[VhostUserRequest.HeaderSize + payload.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(msg, request);
        BinaryPrimitives.WriteUInt32LittleEndian(msg[4..], VhostUserRequest.Version);
        BinaryPrimitives.WriteUInt32LittleEndian(msg[8..], (uint)payload.Length);
        payload.CopyTo(msg[VhostUserRequest.HeaderSize..]);
        int r = _stream.Send(msg, fds);
        if (r != 0)
        {
            int errno = -r;
            string why = errno == Libc.EAGAIN
                ? "the backend is not reading its socket"
                : $"socket error: {Libc.StrError(errno)} (os error {errno})";
            throw Broken(request, why);
        }
    }

    private static string ReceiveFailure(int r) => r switch
    {
        1 => "the backend closed the connection",
        -Libc.EAGAIN => "the backend did not answer in time",
        _ => $"socket error: {Libc.StrError(-r)} (os error {-r})",
    };

    /// <summary>Closes the connection for good (the caller holds the lock) and returns the failure to throw.</summary>
    private VhostUserException Broken(uint request, string reason)
    {
        _brokenReason = $"the connection broke earlier: {reason}";
        _stream?.Dispose();
        _stream = null;
        return new VhostUserException($"{VhostUserRequest.Name(request)} failed: {reason}");
    }

    public void Dispose()
    {
        lock (_lock)
        {
            _stream?.Dispose();
            _stream = null;
        }
    }
}
