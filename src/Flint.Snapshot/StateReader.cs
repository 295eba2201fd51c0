using System.Buffers.Binary;
using System.Text;

namespace Flint.Snapshot;

/// <summary>
/// Reads the fields <see cref="StateWriter"/> wrote, each one checked against the bytes left first: a short or
/// lying section gives a <see cref="SnapshotFormatException"/> naming the section, never an out-of-range access.
/// </summary>
public sealed class StateReader
{
    private readonly byte[] _data;
    private readonly int _end;
    private int _pos;

    public string Section { get; }

    public StateReader(string section, byte[] data) : this(section, data, 0, data.Length) { }

    public StateReader(string section, byte[] data, int offset, int length)
    {
        if ((uint)offset > (uint)data.Length || (uint)length > (uint)(data.Length - offset))
            throw new SnapshotFormatException($"Section {section} lies outside the snapshot file.");
        Section = section;
        _data = data;
        _pos = offset;
        _end = offset + length;
    }

    public int Remaining => _end - _pos;

    private ReadOnlySpan<byte> Take(int n)
    {
        if (n < 0 || n > _end - _pos)
            throw new SnapshotFormatException($"Section {Section} is truncated: {n} more bytes needed, {_end - _pos} left.");
        var s = new ReadOnlySpan<byte>(_data, _pos, n);
        _pos += n;
        return s;
    }

    public byte U8() => Take(1)[0];

    public bool Bool() => U8() switch
    {
        0 => false,
        1 => true,
        var b => throw new SnapshotFormatException($"Section {Section} holds an invalid boolean ({b})."),
    };

    public ushort U16() => BinaryPrimitives.ReadUInt16LittleEndian(Take(2));
    public uint U32() => BinaryPrimitives.ReadUInt32LittleEndian(Take(4));
    public ulong U64() => BinaryPrimitives.ReadUInt64LittleEndian(Take(8));
    public long I64() => BinaryPrimitives.ReadInt64LittleEndian(Take(8));

    /// <summary>A u32 length then that many bytes, the length at most <paramref name="max"/>.</summary>
    public byte[] Bytes(int max = SnapshotFormat.MaxFileSize)
    {
        uint n = U32();
        if (n > (uint)max) throw new SnapshotFormatException($"Section {Section} holds a block of {n} bytes, more than {max}.");
        return Take((int)n).ToArray();
    }

    /// <summary>Exactly <paramref name="into"/>.Length raw bytes.</summary>
    public void Raw(Span<byte> into) => Take(into.Length).CopyTo(into);

    public string? String(int maxBytes = 1 << 20)
    {
        uint n = U32();
        if (n == uint.MaxValue) return null;
        if (n > (uint)maxBytes) throw new SnapshotFormatException($"Section {Section} holds a string of {n} bytes, more than {maxBytes}.");
        var bytes = Take((int)n);
        // Checked first rather than through a throwing decoder: hostile input gets no exception-driven path.
        if (!System.Text.Unicode.Utf8.IsValid(bytes)) throw new SnapshotFormatException($"Section {Section} holds a string that is not UTF-8.");
        return Encoding.UTF8.GetString(bytes);
    }

    public string RequiredString(int maxBytes = 1 << 20) =>
        String(maxBytes) ?? throw new SnapshotFormatException($"Section {Section} lacks a required string.");

    /// <summary>A count read from the file, refused above <paramref name="max"/> before anything is allocated for it.</summary>
    public int Count(int max)
    {
        uint n = U32();
        if (n > (uint)max) throw new SnapshotFormatException($"Section {Section} holds a count of {n}, more than {max}.");
        return (int)n;
    }

    /// <summary>Sections end exactly where their last field does: trailing bytes mean a writer we do not know.</summary>
    public void ExpectEnd()
    {
        if (_pos != _end) throw new SnapshotFormatException($"Section {Section} has {_end - _pos} unexpected trailing bytes.");
    }
}
