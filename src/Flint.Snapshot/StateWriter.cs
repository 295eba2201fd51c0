using System.Buffers.Binary;
using System.Text;

namespace Flint.Snapshot;

/// <summary>
/// Appends little-endian fields to a growing buffer: the body of one section. Strings and byte blocks carry their
/// length first, so <see cref="StateReader"/> can check each one against what is left before reading it.
/// </summary>
public sealed class StateWriter
{
    private byte[] _buf = new byte[256];
    private int _len;

    public int Length => _len;

    public ReadOnlySpan<byte> WrittenSpan => _buf.AsSpan(0, _len);

    public byte[] ToArray() => _buf.AsSpan(0, _len).ToArray();

    private Span<byte> Grow(int n)
    {
        if (_len + n > _buf.Length) Array.Resize(ref _buf, Math.Max(_buf.Length * 2, _len + n));
        var s = _buf.AsSpan(_len, n);
        _len += n;
        return s;
    }

    public void U8(byte v) => Grow(1)[0] = v;
    public void Bool(bool v) => U8(v ? (byte)1 : (byte)0);
    public void U16(ushort v) => BinaryPrimitives.WriteUInt16LittleEndian(Grow(2), v);
    public void U32(uint v) => BinaryPrimitives.WriteUInt32LittleEndian(Grow(4), v);
    public void U64(ulong v) => BinaryPrimitives.WriteUInt64LittleEndian(Grow(8), v);
    public void I64(long v) => BinaryPrimitives.WriteInt64LittleEndian(Grow(8), v);

    /// <summary>A u32 length, then the bytes.</summary>
    public void Bytes(ReadOnlySpan<byte> v)
    {
        U32((uint)v.Length);
        v.CopyTo(Grow(v.Length));
    }

    /// <summary>Raw bytes with no length: for fixed-size blocks whose size the reader knows.</summary>
    public void Raw(ReadOnlySpan<byte> v) => v.CopyTo(Grow(v.Length));

    /// <summary>UTF-8 with a u32 length; null is written as length 0xFFFFFFFF.</summary>
    public void String(string? v)
    {
        if (v == null) { U32(uint.MaxValue); return; }
        Bytes(Encoding.UTF8.GetBytes(v));
    }
}
