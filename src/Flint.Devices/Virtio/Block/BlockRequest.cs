using System.Buffers.Binary;
using static Flint.Devices.Virtio.Block.VirtioBlockConstants;

namespace Flint.Devices.Virtio.Block;

/// <summary>
/// One virtio-blk request as read out of the guest once (Firecracker's <c>Request::parse</c>): the 16-byte header
/// copied out of guest memory, the data length taken from the chain's one copy, and where the status byte goes. The
/// device charges its rate limiter and executes from this value, so what was charged is what runs: a second vCPU
/// rewriting the header (a FLUSH turned into an OUT) or growing a descriptor after the pop changes neither.
/// <para>
/// Layout, whatever the descriptor boundaries (spec 5.2.6): header (readable), data (readable for OUT, writable
/// for IN and GET_ID), status (the last writable byte).
/// </para>
/// </summary>
// SAFETY: copies of validated descriptor pointers and lengths in guest RAM (parsed once, never re-read from the ring).
internal readonly unsafe struct BlockRequest
{
    /// <summary>No writable byte to put a status in (or a broken chain): complete with length 0, write nothing.</summary>
    public bool HasStatus => Status != null;

    /// <summary>The header was read and the data part has the right direction; otherwise fail with <see cref="StatusIoErr"/>.</summary>
    public bool IsWellFormed { get; init; }

    public uint Type { get; init; }
    public ulong Sector { get; init; }

    /// <summary>Data bytes: readable bytes after the header for OUT; writable bytes before the status for IN and GET_ID.</summary>
    public ulong DataLength { get; init; }

    /// <summary>Host pointer to the status byte (the chain's last writable byte).</summary>
    public byte* Status { get; init; }

    /// <summary>Bytes the rate limiter is charged beyond the 1 op: the data of reads and writes.</summary>
    public ulong ChargedBytes => IsWellFormed && Type is RequestIn or RequestOut ? DataLength : 0;

    /// <summary>Reads the request from <paramref name="buffers"/> (already loaded from its chain). Never throws.</summary>
    public static BlockRequest Parse(ChainBuffers buffers)
    {
        if (buffers.WritableBytes == 0) return default;
        // SAFETY: WritableBytes > 0, so there is a writable segment and it is at least 1 byte long (zero-length
        // descriptors take no segment); its last byte is inside that validated guest buffer.
        var last = buffers.Writable[buffers.WritableCount - 1];
        byte* status = (byte*)last.Base + last.Len - 1;

        Span<byte> header = stackalloc byte[HeaderSize];
        var reader = buffers.Reader();
        if (!reader.ReadExact(header)) return new BlockRequest { Status = status };
        uint type = BinaryPrimitives.ReadUInt32LittleEndian(header);
        ulong sector = BinaryPrimitives.ReadUInt64LittleEndian(header[8..]);
        ulong readableData = reader.Remaining;
        ulong writableData = buffers.WritableBytes - 1;
        bool ok;
        ulong data;
        switch (type)
        {
            case RequestIn:
            case RequestGetId:
                ok = readableData == 0; // the data the device fills must all be writable
                data = writableData;
                break;
            case RequestOut:
                ok = writableData == 0; // the data the device stores must all be readable
                data = readableData;
                break;
            default:
                ok = true;
                data = 0;
                break;
        }
        return new BlockRequest { Status = status, IsWellFormed = ok, Type = type, Sector = sector, DataLength = data };
    }
}
