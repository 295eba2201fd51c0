using System.Buffers.Binary;

namespace Flint.Devices.Mmds.Pdu;

/// <summary>
/// An Ethernet II frame over a span (the idea of Firecracker's dumbo <c>pdu::ethernet</c>; our own code): the only place
/// the MMDS stack reads or writes link-layer fields, so no offset is spelled twice. <see cref="TryRead"/> checks that a
/// whole header is there, once; the accessors then read within it.
/// </summary>
public readonly ref struct EthernetFrame
{
    public const int HeaderLength = 14;
    public const ushort TypeIpv4 = 0x0800;
    public const ushort TypeArp = 0x0806;

    private readonly ReadOnlySpan<byte> _bytes;

    private EthernetFrame(ReadOnlySpan<byte> bytes) => _bytes = bytes;

    /// <summary>A view over a received frame; false when it is shorter than a header.</summary>
    public static bool TryRead(ReadOnlySpan<byte> frame, out EthernetFrame view)
    {
        view = frame.Length >= HeaderLength ? new EthernetFrame(frame) : default;
        return frame.Length >= HeaderLength;
    }

    public ReadOnlySpan<byte> Destination => _bytes[..6];
    public ReadOnlySpan<byte> Source => _bytes.Slice(6, 6);
    public ushort EtherType => BinaryPrimitives.ReadUInt16BigEndian(_bytes[12..]);
    public ReadOnlySpan<byte> Payload => _bytes[HeaderLength..];

    /// <summary>Writes a header into <paramref name="buf"/> (at least <see cref="HeaderLength"/> bytes).</summary>
    public static void WriteHeader(Span<byte> buf, ReadOnlySpan<byte> destination, ReadOnlySpan<byte> source, ushort etherType)
    {
        destination[..6].CopyTo(buf);
        source[..6].CopyTo(buf[6..]);
        BinaryPrimitives.WriteUInt16BigEndian(buf[12..], etherType);
    }
}
