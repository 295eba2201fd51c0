using System.Buffers.Binary;

namespace Flint.Devices.Mmds.Pdu;

/// <summary>
/// A TCP segment over a span. <see cref="TryRead"/> checks the header length and (unless the guest left it to the
/// device) the checksum once; the accessors then read that checked copy. <see cref="Write"/> builds a whole segment.
/// </summary>
public readonly ref struct TcpSegment
{
    public const int MinHeaderLength = 20;
    public const byte Fin = 1, Syn = 2, Rst = 4, Psh = 8, Ack = 16;

    /// <summary>RFC 1122's MSS when a SYN carries none.</summary>
    public const int DefaultMss = 536;

    private readonly ReadOnlySpan<byte> _bytes;

    private TcpSegment(ReadOnlySpan<byte> bytes) => _bytes = bytes;

    /// <param name="checksumPartial">The guest asked the device to fill the checksum (VIRTIO_NET_HDR_F_NEEDS_CSUM): not verified.</param>
    public static bool TryRead(ReadOnlySpan<byte> bytes, uint source, uint destination, bool checksumPartial, out TcpSegment segment)
    {
        segment = default;
        if (bytes.Length < MinHeaderLength) return false;
        int doff = (bytes[12] >> 4) * 4;
        if (doff < MinHeaderLength || doff > bytes.Length) return false;
        if (!checksumPartial && PacketUtil.TransportChecksum(source, destination, Ipv4Packet.ProtocolTcp, bytes) != 0) return false;
        segment = new TcpSegment(bytes);
        return true;
    }

    public ushort SourcePort => BinaryPrimitives.ReadUInt16BigEndian(_bytes);
    public ushort DestinationPort => BinaryPrimitives.ReadUInt16BigEndian(_bytes[2..]);
    public uint Sequence => BinaryPrimitives.ReadUInt32BigEndian(_bytes[4..]);
    public uint AckNumber => BinaryPrimitives.ReadUInt32BigEndian(_bytes[8..]);
    public int HeaderLength => (_bytes[12] >> 4) * 4;
    public byte Flags => _bytes[13];
    public ushort Window => BinaryPrimitives.ReadUInt16BigEndian(_bytes[14..]);
    public ReadOnlySpan<byte> Options => _bytes[MinHeaderLength..HeaderLength];
    public ReadOnlySpan<byte> Payload => _bytes[HeaderLength..];

    public bool HasFlag(byte flag) => (Flags & flag) != 0;

    /// <summary>The MSS option, clamped to [64, <paramref name="max"/>]; <see cref="DefaultMss"/> when absent or malformed.</summary>
    public int MaxSegmentSize(int max)
    {
        var opts = Options;
        int i = 0;
        while (i < opts.Length)
        {
            byte kind = opts[i];
            if (kind == 0) break;             // end of options
            if (kind == 1) { i++; continue; } // no-op
            if (i + 1 >= opts.Length) break;
            int len = opts[i + 1];
            if (len < 2 || i + len > opts.Length) break;
            if (kind == 2 && len == 4) return Math.Clamp((int)BinaryPrimitives.ReadUInt16BigEndian(opts[(i + 2)..]), 64, max);
            i += len;
        }
        return DefaultMss;
    }

    /// <summary>Length of the segment <see cref="Write"/> makes.</summary>
    public static int LengthOf(bool mssOption, int payloadLength) => MinHeaderLength + (mssOption ? 4 : 0) + payloadLength;

    /// <summary>Writes a whole segment (header, optional MSS option, payload, checksum) into <paramref name="buf"/>.</summary>
    public static void Write(Span<byte> buf, uint source, uint destination, ushort sourcePort, ushort destinationPort,
        uint seq, uint ack, byte flags, ushort window, ReadOnlySpan<byte> payload, int? mssOption)
    {
        int headerLength = MinHeaderLength + (mssOption.HasValue ? 4 : 0);
        var tcp = buf[..(headerLength + payload.Length)];
        BinaryPrimitives.WriteUInt16BigEndian(tcp, sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(tcp[2..], destinationPort);
        BinaryPrimitives.WriteUInt32BigEndian(tcp[4..], seq);
        BinaryPrimitives.WriteUInt32BigEndian(tcp[8..], ack);
        tcp[12] = (byte)((headerLength / 4) << 4);
        tcp[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(tcp[14..], window);
        tcp[16] = tcp[17] = tcp[18] = tcp[19] = 0;
        if (mssOption is int mss)
        {
            tcp[20] = 2;
            tcp[21] = 4;
            BinaryPrimitives.WriteUInt16BigEndian(tcp[22..], (ushort)mss);
        }
        payload.CopyTo(tcp[headerLength..]);
        BinaryPrimitives.WriteUInt16BigEndian(tcp[16..], PacketUtil.TransportChecksum(source, destination, Ipv4Packet.ProtocolTcp, tcp));
    }
}
