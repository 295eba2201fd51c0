using Flint.Devices.Mmds.Pdu;
using static Flint.Devices.Mmds.Pdu.TcpSegment;

namespace Flint.Devices.Mmds;

/// <summary>
/// The guest-facing MMDS responder attached to one virtio-net device (Firecracker's "Dumbo", our own code):
/// answers ARP requests for the MMDS IPv4 address with its own MAC, and runs a minimal TCP server on port 80
/// that speaks HTTP through <see cref="MmdsHttp"/>. The device offers it every guest frame that may be for it
/// (<see cref="IsCandidate"/>, then <see cref="DetourFrame"/>) and asks it for frames to deliver before reading
/// the tap (<see cref="HasFrameToSend"/>, <see cref="WriteNextFrame"/>).
/// Not thread-safe: its device calls it under the device lock. Never throws on guest input.
/// </summary>
public sealed class MmdsNetworkStack
{
    public const string DefaultIpv4 = "169.254.169.254";
    public const ushort HttpPort = 80;
    public const int MaxConnections = 30;
    public const int Mss = 1460;
    private const int MaxPendingRsts = 16;

    /// <summary>Retransmission timeout of a connection's first unacknowledged segment; it doubles on each expiry up to
    /// <see cref="MaxRtoMs"/>, and after <see cref="MaxRetransmits"/> expiries in a row the connection is reset.</summary>
    public const int InitialRtoMs = 250, MaxRtoMs = 4000, MaxRetransmits = 6;

    /// <summary>Firecracker's MMDS MAC, 06:01:23:45:67:01.</summary>
    public static ReadOnlySpan<byte> DefaultMac => [0x06, 0x01, 0x23, 0x45, 0x67, 0x01];

    private readonly byte[] _mac;
    private readonly MmdsTcpConnection[] _conns = new MmdsTcpConnection[MaxConnections];
    private readonly byte[] _arpMac = new byte[6];
    private uint _arpIp;
    private bool _arpPending;
    private readonly PendingRst[] _rsts = new PendingRst[MaxPendingRsts];
    private int _rstHead, _rstCount;
    private int _rr;
    private long _order;
    private ushort _ipId;
    private readonly Func<long> _nowMs;

    private struct PendingRst
    {
        public MacBytes Mac;
        public uint Ip;
        public ushort Port;
        public uint Seq, AckNo;
        public byte Flags;
    }

    [System.Runtime.CompilerServices.InlineArray(6)]
    private struct MacBytes { private byte _b; }

    public MmdsNetworkStack(MmdsStore store, MmdsVersion version = MmdsVersion.V1, string ipv4 = DefaultIpv4,
        byte[]? mac = null, Func<long>? clockMs = null)
    {
        if (mac != null && mac.Length != 6) throw new ArgumentException("MMDS MAC must be 6 bytes");
        _mac = mac?.ToArray() ?? DefaultMac.ToArray();
        // The precise monotonic clock, the one timerfds use: TickCount64 is the coarse one (a jiffy behind at times), and
        // a timer armed for a deadline on it fired "before" that deadline.
        _nowMs = clockMs ?? (() => System.Diagnostics.Stopwatch.GetTimestamp() / (System.Diagnostics.Stopwatch.Frequency / 1000));
        Ipv4Address = PacketUtil.ParseIpv4(ipv4);
        Http = new MmdsHttp(store, version, new MmdsTokenAuthority(clockMs)) { Metrics = Metrics };
        for (int i = 0; i < _conns.Length; i++) _conns[i] = new MmdsTcpConnection();
    }

    public uint Ipv4Address { get; }
    public ReadOnlySpan<byte> Mac => _mac;
    public MmdsHttp Http { get; }
    public MmdsStore Store => Http.Store;
    public MmdsVersion Version => Http.Version;
    public MmdsMetrics Metrics { get; } = new();

    /// <summary>The stack's clock (ms): <see cref="NextRetransmitMs"/> is on it.</summary>
    public long NowMs => _nowMs();

    /// <summary>The earliest retransmission deadline over all connections (<see cref="NowMs"/>'s clock), 0 when none:
    /// the device arms a timer for it and calls <see cref="OnRetransmitTimer"/>.</summary>
    public long NextRetransmitMs
    {
        get
        {
            long next = 0;
            foreach (var c in _conns)
                if (c.InUse && c.RetransmitAtMs != 0 && (next == 0 || c.RetransmitAtMs < next)) next = c.RetransmitAtMs;
            return next;
        }
    }

    /// <summary>
    /// Connections whose deadline passed go back to their first unacknowledged byte (or SYN-ACK, or FIN) and send it
    /// again, so <see cref="HasFrameToSend"/> turns true; one past <see cref="MaxRetransmits"/> is reset instead.
    /// </summary>
    public void OnRetransmitTimer()
    {
        long now = _nowMs();
        foreach (var c in _conns)
        {
            if (!c.InUse || c.RetransmitAtMs == 0 || c.RetransmitAtMs > now) continue;
            c.RetransmitAtMs = 0; // set again when the segment goes out
            if (c.Established && c.SndUna == c.SndNxt) continue;
            if (++c.Retransmits > MaxRetransmits)
            {
                ResetConn(c);
                continue;
            }
            c.RtoMs = Math.Min(c.RtoMs * 2, MaxRtoMs);
            if (!c.Established)
            {
                c.NeedSynAck = true;
                continue;
            }
            c.SndNxt = c.SndUna; // go back N: the data (and FIN) from there on is sent again
            c.FinSent = false;
        }
    }

    public int ConnectionCount
    {
        get { int n = 0; foreach (var c in _conns) if (c.InUse) n++; return n; }
    }

    /// <summary>
    /// Cheap test on the first bytes of an Ethernet frame (up to 42 are enough): an ARP packet asking for
    /// <paramref name="ipv4"/> or an IPv4 packet to it. No false negatives for well-formed frames.
    /// </summary>
    public static bool IsCandidate(ReadOnlySpan<byte> eth, uint ipv4)
    {
        if (!EthernetFrame.TryRead(eth, out var frame)) return false;
        return frame.EtherType switch
        {
            EthernetFrame.TypeArp => ArpPacket.TryRead(frame.Payload, out var arp) && arp.TargetIp == ipv4,
            EthernetFrame.TypeIpv4 => Ipv4Packet.TryPeekDestination(frame.Payload, out uint dst) && dst == ipv4,
            _ => false,
        };
    }

    /// <summary>
    /// Takes a guest frame (Ethernet onwards, no virtio header). True when it was for MMDS (handled or dropped);
    /// false when the device should send it to the tap as usual. <paramref name="checksumPartial"/>: the guest left
    /// the TCP checksum to the device (VIRTIO_NET_HDR_F_NEEDS_CSUM), so it is not verified.
    /// </summary>
    public bool DetourFrame(ReadOnlySpan<byte> frame, bool checksumPartial = false)
    {
        Interlocked.Increment(ref Metrics.RxCount);
        if (!EthernetFrame.TryRead(frame, out var eth))
        {
            Interlocked.Increment(ref Metrics.RxBadEth);
            return false;
        }
        if (eth.EtherType == EthernetFrame.TypeArp) return HandleArp(eth.Source, eth.Payload);
        if (eth.EtherType != EthernetFrame.TypeIpv4) return false;

        if (!Ipv4Packet.TryPeekDestination(eth.Payload, out uint dst) || dst != Ipv4Address) return false;
        Interlocked.Increment(ref Metrics.RxAccepted);
        switch (Ipv4Packet.Validate(eth.Payload, out var ip))
        {
            case Ipv4Packet.Verdict.Malformed:
                Interlocked.Increment(ref Metrics.RxAcceptedErr);
                return true;
            case Ipv4Packet.Verdict.Fragment or Ipv4Packet.Verdict.NotTcp:
                // Fragments and anything but TCP: dropped, never forwarded.
                Interlocked.Increment(ref Metrics.RxAcceptedUnusual);
                return true;
        }
        if (!TcpSegment.TryRead(ip.Payload, ip.Source, Ipv4Address, checksumPartial, out var seg))
        {
            Interlocked.Increment(ref Metrics.RxAcceptedErr);
            return true;
        }
        HandleTcp(eth.Source, ip.Source, seg);
        return true;
    }

    private bool HandleArp(ReadOnlySpan<byte> srcMac, ReadOnlySpan<byte> payload)
    {
        if (!ArpPacket.TryRead(payload, out var arp) || arp.TargetIp != Ipv4Address || !arp.IsIpv4OverEthernet) return false;
        Interlocked.Increment(ref Metrics.RxAccepted);
        if (arp.Operation != ArpPacket.OpRequest)
        {
            Interlocked.Increment(ref Metrics.RxAcceptedUnusual); // a reply or other op for our address: nothing to do
            return true;
        }
        // Only the most recent request is remembered.
        arp.SenderMac.CopyTo(_arpMac);
        _arpIp = arp.SenderIp;
        _arpPending = true;
        return true;
    }

    private void HandleTcp(ReadOnlySpan<byte> srcMac, uint src, in TcpSegment seg)
    {
        ushort sport = seg.SourcePort;
        uint seq = seg.Sequence;
        uint ack = seg.AckNumber;
        byte flags = seg.Flags;
        var payload = seg.Payload;
        bool syn = (flags & Syn) != 0, fin = (flags & Fin) != 0, rst = (flags & Rst) != 0, ackf = (flags & Ack) != 0;

        var c = Find(src, sport);
        if (seg.DestinationPort != HttpPort || (syn && (fin || rst)))
        {
            if (!rst) ResetFor(srcMac, src, sport, seq, ack, ackf, payload.Length + (syn ? 1 : 0) + (fin ? 1 : 0));
            if (c != null) Free(c);
            return;
        }
        if (c == null)
        {
            if (rst) return;
            if (syn && !ackf)
            {
                Open(srcMac, src, sport, seq, seg.Window, seg.MaxSegmentSize(Mss));
                return;
            }
            ResetFor(srcMac, src, sport, seq, ack, ackf, payload.Length + (fin ? 1 : 0));
            return;
        }
        OnSegment(c, seq, ack, flags, seg.Window, payload);
    }

    private void Open(ReadOnlySpan<byte> mac, uint ip, ushort port, uint seq, ushort window, int mss)
    {
        MmdsTcpConnection? slot = null, evict = null;
        foreach (var c in _conns)
        {
            if (!c.InUse) { slot = c; break; }
            if ((c.FinSent || c.PeerFin) && (evict == null || c.CreatedOrder < evict.CreatedOrder)) evict = c;
        }
        if (slot == null && evict != null)
        {
            Free(evict);
            slot = evict;
        }
        if (slot == null)
        {
            ResetFor(mac, ip, port, seq, 0, false, 1);
            return;
        }
        slot.Init(mac, ip, port, seq, (uint)Random.Shared.Next(), window, mss, _order++);
        Interlocked.Increment(ref Metrics.ConnectionsCreated);
    }

    private void OnSegment(MmdsTcpConnection c, uint seq, uint ack, byte flags, ushort window, ReadOnlySpan<byte> payload)
    {
        bool syn = (flags & Syn) != 0, fin = (flags & Fin) != 0, ackf = (flags & Ack) != 0;
        if ((flags & Rst) != 0)
        {
            // Only a RST inside the receive window counts (RFC 5961 spirit: blind resets are ignored).
            if (MmdsTcpConnection.Le(c.RcvNxt, seq) && MmdsTcpConnection.Le(seq, c.RcvNxt + c.OurWindow)) Free(c);
            return;
        }
        if (syn)
        {
            if (!c.Established && seq == c.Irs) { c.NeedSynAck = true; return; } // our SYN-ACK was not seen yet
            ResetConn(c);
            return;
        }
        if (!ackf) return;
        if (!c.Established)
        {
            if (ack != c.Iss + 1)
            {
                ResetFor(c.RemoteMac, c.RemoteIp, c.RemotePort, seq, ack, true, 0);
                return;
            }
            c.Established = true;
            c.SndUna = ack;
            OnAcked(c);
        }
        else if (MmdsTcpConnection.Lt(c.SndUna, ack) && MmdsTcpConnection.Le(ack, c.SndNxt))
        {
            c.SndUna = ack;
            OnAcked(c);
        }
        else if (MmdsTcpConnection.Lt(c.SndNxt, ack))
        {
            c.NeedAck = true; // acknowledges what we never sent
            return;
        }
        c.PeerWindow = window;

        if (payload.Length > 0 || fin)
        {
            if (MmdsTcpConnection.Lt(seq, c.RcvNxt))
            {
                // Retransmission: keep only what is new.
                uint dup = c.RcvNxt - seq;
                if (dup >= (uint)payload.Length) { if (dup > (uint)payload.Length) fin = false; payload = default; }
                else payload = payload[(int)dup..];
                seq = c.RcvNxt;
                c.NeedAck = true;
            }
            if (seq != c.RcvNxt || c.PeerFin)
            {
                c.NeedAck = true; // out of order (the link does not reorder; the guest will resend) or after FIN
            }
            else
            {
                if (payload.Length > c.Rx.Length - c.RxLen)
                {
                    ResetConn(c); // overran the window we advertised
                    return;
                }
                payload.CopyTo(c.Rx.AsSpan(c.RxLen));
                c.RxLen += payload.Length;
                c.RcvNxt += (uint)payload.Length;
                if (payload.Length > 0) c.NeedAck = true;
                if (fin)
                {
                    c.RcvNxt++;
                    c.PeerFin = true;
                    c.NeedAck = true;
                }
            }
        }

        if (c.FinSent && c.SndUna == c.SndNxt && c.PeerFin)
        {
            // Both sides closed and our FIN is acknowledged: done once the last ACK is out.
            if (c.NeedAck) c.FreeAfterSend = true;
            else Free(c);
            return;
        }
        if (c.Tx != null && !MmdsTcpConnection.Lt(c.SndUna, c.TxEnd)) c.Tx = null;
        Serve(c);
    }

    /// <summary>New data acknowledged: the timeout starts over for what is still in flight.</summary>
    private void OnAcked(MmdsTcpConnection c)
    {
        c.Retransmits = 0;
        c.RtoMs = InitialRtoMs;
        c.RetransmitAtMs = c.SndUna == c.SndNxt ? 0 : _nowMs() + c.RtoMs;
    }

    private void Serve(MmdsTcpConnection c)
    {
        if (c.Tx == null && !c.FinQueued && c.RxLen > 0)
        {
            int used = Http.TryHandle(c.Rx.AsSpan(0, c.RxLen), out var resp, out bool close);
            if (used > 0)
            {
                c.Rx.AsSpan(used, c.RxLen - used).CopyTo(c.Rx);
                c.RxLen -= used;
                c.Tx = resp;
                c.TxBase = c.SndNxt;
                if (close) c.FinQueued = true;
            }
            else if (c.RxLen == c.Rx.Length)
            {
                ResetConn(c); // a request larger than the buffer
                return;
            }
        }
        if (c.PeerFin && c.Tx == null && !c.FinQueued) c.FinQueued = true;
    }

    private MmdsTcpConnection? Find(uint ip, ushort port)
    {
        foreach (var c in _conns)
            if (c.InUse && c.RemoteIp == ip && c.RemotePort == port) return c;
        return null;
    }

    private void Free(MmdsTcpConnection c)
    {
        if (!c.InUse) return;
        c.InUse = false;
        c.Tx = null;
        Interlocked.Increment(ref Metrics.ConnectionsDestroyed);
    }

    private void ResetConn(MmdsTcpConnection c)
    {
        QueueRst(c.RemoteMac, c.RemoteIp, c.RemotePort, c.SndNxt, c.RcvNxt, Rst | Ack);
        Free(c);
    }

    /// <summary>RFC 793 reset for an unacceptable segment.</summary>
    private void ResetFor(ReadOnlySpan<byte> mac, uint ip, ushort port, uint seq, uint ack, bool hadAck, int segLen)
    {
        if (hadAck) QueueRst(mac, ip, port, ack, 0, Rst);
        else QueueRst(mac, ip, port, 0, seq + (uint)segLen, Rst | Ack);
    }

    private void QueueRst(ReadOnlySpan<byte> mac, uint ip, ushort port, uint seq, uint ack, byte flags)
    {
        if (_rstCount == MaxPendingRsts) return;
        ref var r = ref _rsts[(_rstHead + _rstCount) % MaxPendingRsts];
        mac.CopyTo(r.Mac);
        r.Ip = ip;
        r.Port = port;
        r.Seq = seq;
        r.AckNo = ack;
        r.Flags = flags;
        _rstCount++;
    }

    public bool HasFrameToSend
    {
        get
        {
            if (_arpPending || _rstCount > 0) return true;
            foreach (var c in _conns) if (c.HasOutput) return true;
            return false;
        }
    }

    /// <summary>Writes the next frame for the guest (Ethernet onwards) into <paramref name="buf"/>; its length, or 0 when none.</summary>
    public int WriteNextFrame(Span<byte> buf)
    {
        if (_arpPending)
        {
            _arpPending = false;
            return WriteArpReply(buf);
        }
        if (_rstCount > 0)
        {
            ref var r = ref _rsts[_rstHead];
            _rstHead = (_rstHead + 1) % MaxPendingRsts;
            _rstCount--;
            return WriteTcp(buf, r.Mac, r.Ip, r.Port, r.Seq, r.AckNo, r.Flags, 0, default, false);
        }
        for (int i = 0; i < _conns.Length; i++)
        {
            var c = _conns[(_rr + i) % _conns.Length];
            if (!c.HasOutput) continue;
            _rr = (_rr + i + 1) % _conns.Length;
            return WriteSegment(c, buf);
        }
        return 0;
    }

    private int WriteSegment(MmdsTcpConnection c, Span<byte> buf)
    {
        byte flags = Ack;
        uint seq = c.SndNxt;
        ReadOnlySpan<byte> payload = default;
        bool mss = false;
        if (c.NeedSynAck)
        {
            flags = Syn | Ack;
            seq = c.Iss;
            mss = true;
            c.NeedSynAck = false;
        }
        else if (c.Established && c.Unsent > 0 && c.WindowLeft > 0)
        {
            int room = buf.Length - EthernetFrame.HeaderLength - Ipv4Packet.MinHeaderLength - TcpSegment.MinHeaderLength;
            int n = Math.Min(Math.Min(c.Unsent, c.PeerMss), Math.Min(c.WindowLeft, room));
            payload = c.Tx.AsSpan((int)(c.SndNxt - c.TxBase), n);
            flags |= Psh;
            c.SndNxt += (uint)n;
            if (c.Unsent == 0 && c.FinQueued)
            {
                flags |= Fin;
                c.SndNxt++;
                c.FinSent = true;
            }
        }
        else if (c.Established && c.FinQueued && !c.FinSent && c.Unsent == 0)
        {
            flags |= Fin;
            c.SndNxt++;
            c.FinSent = true;
        }
        c.NeedAck = false;
        // SYN, data and FIN take sequence space the guest must acknowledge: time it from the first one in flight.
        if ((flags & (Syn | Fin)) != 0 || !payload.IsEmpty)
            if (c.RetransmitAtMs == 0) c.RetransmitAtMs = _nowMs() + c.RtoMs;
        int len = WriteTcp(buf, c.RemoteMac, c.RemoteIp, c.RemotePort, seq, c.RcvNxt, flags, c.OurWindow, payload, mss);
        if (c.FreeAfterSend && !c.HasOutput) Free(c);
        return len;
    }

    private int WriteTcp(Span<byte> buf, ReadOnlySpan<byte> dstMac, uint dstIp, ushort dstPort, uint seq, uint ack,
        byte flags, ushort window, ReadOnlySpan<byte> payload, bool mssOption)
    {
        int tcpLen = TcpSegment.LengthOf(mssOption, payload.Length);
        int ipLen = Ipv4Packet.MinHeaderLength + tcpLen;
        int total = EthernetFrame.HeaderLength + ipLen;
        if (total > buf.Length)
        {
            Interlocked.Increment(ref Metrics.TxErrors);
            return 0;
        }
        EthernetFrame.WriteHeader(buf, dstMac, _mac, EthernetFrame.TypeIpv4);
        var ip = buf[EthernetFrame.HeaderLength..];
        Ipv4Packet.WriteHeader(ip, ipLen, _ipId++, Ipv4Packet.ProtocolTcp, Ipv4Address, dstIp);
        TcpSegment.Write(ip[Ipv4Packet.MinHeaderLength..], Ipv4Address, dstIp, HttpPort, dstPort, seq, ack, flags, window,
            payload, mssOption ? Mss : null);
        Count(total);
        return total;
    }

    private int WriteArpReply(Span<byte> buf)
    {
        const int total = EthernetFrame.HeaderLength + ArpPacket.Length;
        if (buf.Length < total) { Interlocked.Increment(ref Metrics.TxErrors); return 0; }
        EthernetFrame.WriteHeader(buf, _arpMac, _mac, EthernetFrame.TypeArp);
        ArpPacket.WriteReply(buf[EthernetFrame.HeaderLength..], _mac, Ipv4Address, _arpMac, _arpIp);
        Count(total);
        return total;
    }

    private void Count(int bytes)
    {
        Interlocked.Increment(ref Metrics.TxFrames);
        Interlocked.Increment(ref Metrics.TxCount);
        Interlocked.Add(ref Metrics.TxBytes, bytes);
    }
}
