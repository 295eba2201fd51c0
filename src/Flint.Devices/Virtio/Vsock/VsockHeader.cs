using System.Buffers.Binary;
using static Flint.Devices.Virtio.Vsock.VsockConstants;

namespace Flint.Devices.Virtio.Vsock;

/// <summary>What the device does with a guest packet after checking its header.</summary>
public enum VsockHeaderVerdict
{
    /// <summary>Well formed: hand it to the back-end.</summary>
    Valid,
    /// <summary>Not from our guest's CID: there is nobody to answer, drop it.</summary>
    Drop,
    /// <summary>From our guest but malformed (wrong destination, type, op, or a len the chain cannot hold): answer with RST.</summary>
    Reset,
}

/// <summary>
/// The 44-byte virtio-vsock packet header (spec 5.10.6), little-endian on the wire. A value type: the device copies
/// the guest's bytes once, parses them into this struct, and every later decision reads the struct, never guest
/// memory again (the guest may rewrite its buffer while we work).
/// </summary>
public readonly record struct VsockHeader(
    ulong SrcCid, ulong DstCid, uint SrcPort, uint DstPort, uint Len, ushort Type, ushort Op, uint Flags,
    uint BufAlloc, uint FwdCnt)
{
    /// <summary>Parses a header from exactly <see cref="VsockConstants.HeaderSize"/> or more bytes; false when there are fewer.</summary>
    public static bool TryRead(ReadOnlySpan<byte> b, out VsockHeader header)
    {
        if (b.Length < HeaderSize)
        {
            header = default;
            return false;
        }
        header = new VsockHeader(
            BinaryPrimitives.ReadUInt64LittleEndian(b[OffSrcCid..]),
            BinaryPrimitives.ReadUInt64LittleEndian(b[OffDstCid..]),
            BinaryPrimitives.ReadUInt32LittleEndian(b[OffSrcPort..]),
            BinaryPrimitives.ReadUInt32LittleEndian(b[OffDstPort..]),
            BinaryPrimitives.ReadUInt32LittleEndian(b[OffLen..]),
            BinaryPrimitives.ReadUInt16LittleEndian(b[OffType..]),
            BinaryPrimitives.ReadUInt16LittleEndian(b[OffOp..]),
            BinaryPrimitives.ReadUInt32LittleEndian(b[OffFlags..]),
            BinaryPrimitives.ReadUInt32LittleEndian(b[OffBufAlloc..]),
            BinaryPrimitives.ReadUInt32LittleEndian(b[OffFwdCnt..]));
        return true;
    }

    /// <summary>Writes the header's 44 bytes; false (nothing written) when <paramref name="b"/> is shorter.</summary>
    public bool TryWrite(Span<byte> b)
    {
        if (b.Length < HeaderSize) return false;
        BinaryPrimitives.WriteUInt64LittleEndian(b[OffSrcCid..], SrcCid);
        BinaryPrimitives.WriteUInt64LittleEndian(b[OffDstCid..], DstCid);
        BinaryPrimitives.WriteUInt32LittleEndian(b[OffSrcPort..], SrcPort);
        BinaryPrimitives.WriteUInt32LittleEndian(b[OffDstPort..], DstPort);
        BinaryPrimitives.WriteUInt32LittleEndian(b[OffLen..], Len);
        BinaryPrimitives.WriteUInt16LittleEndian(b[OffType..], Type);
        BinaryPrimitives.WriteUInt16LittleEndian(b[OffOp..], Op);
        BinaryPrimitives.WriteUInt32LittleEndian(b[OffFlags..], Flags);
        BinaryPrimitives.WriteUInt32LittleEndian(b[OffBufAlloc..], BufAlloc);
        BinaryPrimitives.WriteUInt32LittleEndian(b[OffFwdCnt..], FwdCnt);
        return true;
    }

    /// <summary>A host-to-guest stream packet.</summary>
    public static VsockHeader ToGuest(ulong guestCid, uint srcPort, uint dstPort, ushort op, uint len, uint flags, uint bufAlloc, uint fwdCnt) =>
        new(HostCid, guestCid, srcPort, dstPort, len, TypeStream, op, flags, bufAlloc, fwdCnt);

    /// <summary>Connection key of a guest packet: our port (its dst) high, the guest's port (its src) low.</summary>
    public ulong ConnectionKey => ((ulong)DstPort << 32) | SrcPort;

    /// <summary>
    /// Checks a packet the guest sent (tx): it must come from <paramref name="guestCid"/>, go to the host, be a stream
    /// packet with a known op, and an RW's len must fit both what the chain holds after the header
    /// (<paramref name="payloadBytes"/>) and <see cref="VsockConstants.MaxTxPayload"/>. Other ops' len is ignored, as
    /// they carry no payload.
    /// </summary>
    public VsockHeaderVerdict Validate(ulong guestCid, ulong payloadBytes)
    {
        if (SrcCid != guestCid) return VsockHeaderVerdict.Drop;
        if (DstCid != HostCid || Type != TypeStream) return VsockHeaderVerdict.Reset;
        if (Op == OpInvalid || Op > OpCreditRequest) return VsockHeaderVerdict.Reset;
        if (Op == OpRw && (Len > payloadBytes || Len > MaxTxPayload)) return VsockHeaderVerdict.Reset;
        return VsockHeaderVerdict.Valid;
    }
}
