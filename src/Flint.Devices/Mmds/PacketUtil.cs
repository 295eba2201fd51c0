using System.Buffers.Binary;

namespace Flint.Devices.Mmds;

/// <summary>Internet checksum helpers and Ethernet/IPv4 constants used by the MMDS stack.</summary>
public static class PacketUtil
{
    public const int EthHeader = 14;
    public const ushort EtherTypeIpv4 = 0x0800;
    public const ushort EtherTypeArp = 0x0806;
    public const int ArpPayload = 28;
    public const int Ipv4MinHeader = 20;
    public const int TcpMinHeader = 20;
    public const byte ProtoTcp = 6;

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
