using System.Buffers.Binary;
using Flint.Devices.Mmds;

namespace Flint.Fuzz.Targets;

/// <summary>
/// MMDS's network stack (ARP + TCP + HTTP) fed guest frames one at a time, its replies drained after each.
/// Input: byte 0 flags, then records [u16 LE length][frame]; length 0xFFFF instead advances the stack's clock by the
/// next byte x 100 ms and fires the retransmission timer. Flags: bit 0 passes checksumPartial (TCP checksum not
/// verified), bit 1 recomputes the IPv4 header checksum, bit 2 sets each TCP frame's ack to what the stack sent last
/// on that port (its ISN is random, so without this a stored input could never get past the handshake).
/// DetourFrame and WriteNextFrame are documented never to throw on guest input: any exception is a crash, and so is
/// a stack that never stops producing frames.
/// </summary>
public sealed class MmdsStackTarget : IFuzzTarget
{
    private const int MaxDrain = 4096;
    private readonly MmdsStore _store = MmdsSeedData.Store();
    private readonly byte[] _out = new byte[65536];
    private readonly byte[] _frame = new byte[65536];
    private readonly Dictionary<ushort, uint> _nextAck = new();
    private long _now;

    public string Name => "mmds-stack";
    public string Description => "Flint.Devices.Mmds.MmdsNetworkStack: guest frames through DetourFrame, replies drained with WriteNextFrame, retransmission timer on a fake clock; no exception, no endless output";

    public bool IsAvailable(out string? reason) { reason = null; return true; }

    public void Run(ReadOnlySpan<byte> input)
    {
        if (input.IsEmpty) return;
        byte flags = input[0];
        _now = 1_000_000;
        _nextAck.Clear();
        var stack = new MmdsNetworkStack(_store, (flags & 8) != 0 ? MmdsVersion.V2 : MmdsVersion.V1, clockMs: () => _now);
        var rest = input[1..];
        while (rest.Length >= 2)
        {
            int len = BinaryPrimitives.ReadUInt16LittleEndian(rest);
            rest = rest[2..];
            if (len == 0xFFFF)
            {
                if (rest.IsEmpty) break;
                _now += rest[0] * 100L;
                rest = rest[1..];
                stack.OnRetransmitTimer();
            }
            else
            {
                len = Math.Min(len, rest.Length);
                var frame = _frame.AsSpan(0, len);
                rest[..len].CopyTo(frame);
                rest = rest[len..];
                Fixup(frame, flags);
                stack.DetourFrame(frame, checksumPartial: (flags & 1) != 0);
            }
            Drain(stack);
        }
    }

    private void Drain(MmdsNetworkStack stack)
    {
        for (int i = 0; stack.HasFrameToSend; i++)
        {
            if (i == MaxDrain) throw new FuzzInvariantException($"the stack still has frames to send after {MaxDrain}");
            int n = stack.WriteNextFrame(_out);
            if (n < 0 || n > _out.Length) throw new FuzzInvariantException($"WriteNextFrame returned {n}");
            if (n == 0) break;
            Observe(_out.AsSpan(0, n));
        }
    }

    /// <summary>Remembers, per guest port, the sequence number after the stack's last segment (what the guest acks).</summary>
    private void Observe(ReadOnlySpan<byte> f)
    {
        if (f.Length < 54 || BinaryPrimitives.ReadUInt16BigEndian(f[12..]) != PacketUtil.EtherTypeIpv4 || f[23] != PacketUtil.ProtoTcp) return;
        int ihl = (f[14] & 0xf) * 4;
        int totalLen = BinaryPrimitives.ReadUInt16BigEndian(f[16..]);
        var t = f[(14 + ihl)..];
        int hl = (t[12] >> 4) * 4;
        uint seq = BinaryPrimitives.ReadUInt32BigEndian(t[4..]);
        byte tf = t[13];
        uint dataLen = (uint)Math.Max(0, totalLen - ihl - hl);
        _nextAck[BinaryPrimitives.ReadUInt16BigEndian(t[2..])] = seq + dataLen + ((tf & FrameBuilder.Syn) != 0 ? 1u : 0) + ((tf & FrameBuilder.Fin) != 0 ? 1u : 0);
    }

    private void Fixup(Span<byte> f, byte flags)
    {
        if (f.Length < 34 || BinaryPrimitives.ReadUInt16BigEndian(f[12..]) != PacketUtil.EtherTypeIpv4) return;
        int ihl = (f[14] & 0xf) * 4;
        if (ihl < 20 || f.Length < 14 + ihl) return;
        if ((flags & 4) != 0 && f[23] == PacketUtil.ProtoTcp && f.Length >= 14 + ihl + 20)
        {
            var t = f[(14 + ihl)..];
            if (_nextAck.TryGetValue(BinaryPrimitives.ReadUInt16BigEndian(t), out uint ack))
                BinaryPrimitives.WriteUInt32BigEndian(t[8..], ack);
        }
        if ((flags & 2) != 0)
        {
            f[24] = f[25] = 0;
            BinaryPrimitives.WriteUInt16BigEndian(f[24..], PacketUtil.Checksum(f.Slice(14, ihl)));
        }
    }

    public IEnumerable<(string, byte[])> Seeds()
    {
        static byte[] Pack(byte flags, IEnumerable<byte[]> frames, bool timer = false)
        {
            var b = new List<byte> { flags };
            foreach (var f in frames)
            {
                b.Add((byte)f.Length); b.Add((byte)(f.Length >> 8));
                b.AddRange(f);
            }
            if (timer) b.AddRange(new byte[] { 0xff, 0xff, 5, 0xff, 0xff, 10, 0xff, 0xff, 40 });
            return b.ToArray();
        }
        yield return ("v1-get", Pack(7, FrameBuilder.Conversation("GET /latest/meta-data/ HTTP/1.1\r\n\r\n")));
        yield return ("v1-json-timer", Pack(7, FrameBuilder.Conversation("GET /latest HTTP/1.1\r\nAccept: application/json\r\n\r\n").Take(4), timer: true));
        yield return ("v2-token", Pack(15, FrameBuilder.Conversation("PUT /latest/api/token HTTP/1.1\r\nX-metadata-token-ttl-seconds: 60\r\n\r\n")));
        yield return ("arp-only", Pack(0, [FrameBuilder.ArpRequest(FrameBuilder.MmdsIp)]));
        yield return ("stray-ack", Pack(2, [FrameBuilder.Tcp(1234, 5, 77, FrameBuilder.Ack, "x"u8)]));
    }
}
