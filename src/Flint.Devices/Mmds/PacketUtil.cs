using System.Buffers.Binary;

namespace Flint.Devices.Mmds;

/// <summary>
/// Internet checksum helpers. The header layouts live in the typed views under <c>Pdu/</c>; the constants here name
/// theirs for test and fuzz code that builds frames by hand.
/// </summary>
public static class PacketUtil
{
    public const int EthHeader = Pdu.EthernetFrame.HeaderLength;
    public const ushort EtherTypeIpv4 = Pdu.EthernetFrame.TypeIpv4;
    public const ushort EtherTypeArp = Pdu.EthernetFrame.TypeArp;
    public const int ArpPayload = Pdu.ArpPacket.Length;
    public const int Ipv4MinHeader = Pdu.Ipv4Packet.MinHeaderLength;
    public const int TcpMinHeader = Pdu.TcpSegment.MinHeaderLength;
    public const byte ProtoTcp = Pdu.Ipv4Packet.ProtocolTcp;

    /// <summary>One's-complement sum of 16-bit big-endian words (odd byte padded), folded but not inverted.</summary>
    public static uint Sum(ReadOnlySpan<byte> data, uint acc = 0)
    {
        int i = 0;
        for (; i + 1 < data.Length; i += 2) acc += BinaryPrimitives.ReadUInt16BigEndian(data[i..]);
        if (i < data.Length) acc += (uint)data[i] << 8;
        return acc;
    }

    public static ushort Fold(uint acc)
    {
        while ((acc >> 16) != 0) acc = (acc & 0xffff) + (acc >> 16);
        return (ushort)acc;
    }

    public static ushort Checksum(ReadOnlySpan<byte> data) => (ushort)~Fold(Sum(data));

    /// <summary>TCP/UDP checksum over the IPv4 pseudo-header and <paramref name="segment"/> (checksum field included).</summary>
    public static ushort TransportChecksum(uint src, uint dst, byte proto, ReadOnlySpan<byte> segment)
    {
        uint acc = (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + proto + (uint)segment.Length;
        return (ushort)~Fold(Sum(segment, acc));
    }

    public static uint ParseIpv4(string s)
    {
        var p = s.Split('.');
        if (p.Length != 4) throw new ArgumentException($"bad IPv4 address {s}");
        uint v = 0;
        foreach (var x in p) v = (v << 8) | byte.Parse(x, System.Globalization.CultureInfo.InvariantCulture);
        return v;
    }
}
