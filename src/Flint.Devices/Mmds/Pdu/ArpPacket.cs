using System.Buffers.Binary;

namespace Flint.Devices.Mmds.Pdu;

/// <summary>
/// An ARP packet for IPv4 over Ethernet (RFC 826), the only kind MMDS answers: hardware type 1, protocol IPv4,
/// 6-byte hardware and 4-byte protocol addresses. <see cref="TryRead"/> checks the length and those four fields once.
/// </summary>
public readonly ref struct ArpPacket
{
    public const int Length = 28;
    public const ushort OpRequest = 1, OpReply = 2;

    private readonly ReadOnlySpan<byte> _bytes;

    private ArpPacket(ReadOnlySpan<byte> bytes) => _bytes = bytes;

    /// <summary>False when <paramref name="bytes"/> is too short to hold an IPv4-over-Ethernet ARP packet.</summary>
    public static bool TryRead(ReadOnlySpan<byte> bytes, out ArpPacket arp)
    {
        arp = new ArpPacket(bytes);
        return bytes.Length >= Length;
    }

    /// <summary>Whether the fixed fields say IPv4 over Ethernet (valid after <see cref="TryRead"/> said true).</summary>
    public bool IsIpv4OverEthernet =>
        BinaryPrimitives.ReadUInt16BigEndian(_bytes) == 1 && BinaryPrimitives.ReadUInt16BigEndian(_bytes[2..]) == EthernetFrame.TypeIpv4
        && _bytes[4] == 6 && _bytes[5] == 4;

    public ushort Operation => BinaryPrimitives.ReadUInt16BigEndian(_bytes[6..]);
    public ReadOnlySpan<byte> SenderMac => _bytes.Slice(8, 6);
    public uint SenderIp => BinaryPrimitives.ReadUInt32BigEndian(_bytes[14..]);
    public uint TargetIp => BinaryPrimitives.ReadUInt32BigEndian(_bytes[24..]);

    /// <summary>Writes a reply into <paramref name="buf"/> (at least <see cref="Length"/> bytes).</summary>
    public static void WriteReply(Span<byte> buf, ReadOnlySpan<byte> senderMac, uint senderIp, ReadOnlySpan<byte> targetMac, uint targetIp)
    {
        BinaryPrimitives.WriteUInt16BigEndian(buf, 1);
        BinaryPrimitives.WriteUInt16BigEndian(buf[2..], EthernetFrame.TypeIpv4);
        buf[4] = 6;
        buf[5] = 4;
        BinaryPrimitives.WriteUInt16BigEndian(buf[6..], OpReply);
        senderMac[..6].CopyTo(buf[8..]);
        BinaryPrimitives.WriteUInt32BigEndian(buf[14..], senderIp);
        targetMac[..6].CopyTo(buf[18..]);
        BinaryPrimitives.WriteUInt32BigEndian(buf[24..], targetIp);
    }
}
