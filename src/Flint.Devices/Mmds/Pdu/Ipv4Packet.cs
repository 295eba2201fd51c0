using System.Buffers.Binary;

namespace Flint.Devices.Mmds.Pdu;

/// <summary>
/// An IPv4 packet over a span. <see cref="TryPeekDestination"/> is the cheap look the device's filter needs;
/// <see cref="Validate"/> checks the header once (version, header length, total length, checksum) and the accessors
/// then read the checked copy. <see cref="WriteHeader"/> fills the 20-byte header MMDS sends, checksum included.
/// </summary>
public readonly ref struct Ipv4Packet
{
    public const int MinHeaderLength = 20;
    public const byte ProtocolTcp = 6;

    /// <summary>What <see cref="Validate"/> found.</summary>
    public enum Verdict { Ok, Malformed, Fragment, NotTcp }

    private readonly ReadOnlySpan<byte> _bytes;

    private Ipv4Packet(ReadOnlySpan<byte> bytes) => _bytes = bytes;

    /// <summary>The destination address when at least a minimal header is there.</summary>
    public static bool TryPeekDestination(ReadOnlySpan<byte> bytes, out uint destination)
    {
        destination = bytes.Length >= MinHeaderLength ? BinaryPrimitives.ReadUInt32BigEndian(bytes[16..]) : 0;
        return bytes.Length >= MinHeaderLength;
    }

    /// <summary>
    /// Checks a received packet; on <see cref="Verdict.Ok"/> <paramref name="packet"/> spans exactly the packet's total
    /// length (link padding dropped) and it is an unfragmented TCP packet.
    /// </summary>
    public static Verdict Validate(ReadOnlySpan<byte> bytes, out Ipv4Packet packet)
    {
        packet = default;
        if (bytes.Length < MinHeaderLength) return Verdict.Malformed;
        int ihl = (bytes[0] & 0xf) * 4;
        int total = BinaryPrimitives.ReadUInt16BigEndian(bytes[2..]);
        if ((bytes[0] >> 4) != 4 || ihl < MinHeaderLength || total < ihl || total > bytes.Length
            || PacketUtil.Checksum(bytes[..ihl]) != 0)
            return Verdict.Malformed;
        if ((BinaryPrimitives.ReadUInt16BigEndian(bytes[6..]) & 0x3fff) != 0) return Verdict.Fragment;
        if (bytes[9] != ProtocolTcp) return Verdict.NotTcp;
        packet = new Ipv4Packet(bytes[..total]);
        return Verdict.Ok;
    }

    public int HeaderLength => (_bytes[0] & 0xf) * 4;
    public uint Source => BinaryPrimitives.ReadUInt32BigEndian(_bytes[12..]);
    public uint Destination => BinaryPrimitives.ReadUInt32BigEndian(_bytes[16..]);
    public ReadOnlySpan<byte> Payload => _bytes[HeaderLength..];

    /// <summary>Writes a 20-byte header (DF set, TTL 64) with its checksum into <paramref name="buf"/>.</summary>
    public static void WriteHeader(Span<byte> buf, int totalLength, ushort id, byte protocol, uint source, uint destination)
    {
        var ip = buf[..MinHeaderLength];
        ip[0] = 0x45;
        ip[1] = 0;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)totalLength);
        BinaryPrimitives.WriteUInt16BigEndian(ip[4..], id);
        BinaryPrimitives.WriteUInt16BigEndian(ip[6..], 0x4000); // DF
        ip[8] = 64;
        ip[9] = protocol;
        ip[10] = ip[11] = 0;
        BinaryPrimitives.WriteUInt32BigEndian(ip[12..], source);
        BinaryPrimitives.WriteUInt32BigEndian(ip[16..], destination);
        BinaryPrimitives.WriteUInt16BigEndian(ip[10..], PacketUtil.Checksum(ip));
    }
}
