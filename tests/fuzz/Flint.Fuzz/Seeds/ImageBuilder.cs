using System.Buffers.Binary;
using Flint.Devices.Virtio;
using Flint.Fuzz.Targets;

namespace Flint.Fuzz;

/// <summary>
/// Plays a well-behaved driver to build a device target's input (<see cref="QueueLayout"/>): descriptor chains in
/// each queue's table, heads on its avail ring, buffers bump-allocated from <see cref="QueueLayout.DataStart"/>.
/// </summary>
public sealed class ImageBuilder
{
    private readonly byte[] _image = new byte[QueueLayout.ImageSize];
    private readonly ushort[] _nextDesc = new ushort[4];
    private readonly ushort[] _availIdx = new ushort[4];
    private int _top = (int)QueueLayout.DataStart;
    private readonly ushort _size;

    public ImageBuilder(ushort size = QueueLayout.MaxQueueSize) => _size = size;

    /// <summary>Places <paramref name="data"/> (or <paramref name="len"/> zero bytes) in guest memory; returns its address.</summary>
    public ulong Buffer(ReadOnlySpan<byte> data, int len = -1)
    {
        int n = len < 0 ? data.Length : len;
        int at = _top;
        data.CopyTo(_image.AsSpan(at));
        _top = (at + n + 15) & ~15;
        return (ulong)at;
    }

    /// <summary>A chain of (addr, len, device-writable) descriptors on queue <paramref name="q"/>, published on its avail ring.</summary>
    public ImageBuilder Chain(int q, params (ulong Addr, uint Len, bool Write)[] bufs)
    {
        ushort head = _nextDesc[q];
        for (int i = 0; i < bufs.Length; i++)
        {
            ushort idx = _nextDesc[q];
            _nextDesc[q] = (ushort)((idx + 1) % _size);
            var d = _image.AsSpan((int)QueueLayout.DescTable(q) + 16 * idx, 16);
            BinaryPrimitives.WriteUInt64LittleEndian(d, bufs[i].Addr);
            BinaryPrimitives.WriteUInt32LittleEndian(d[8..], bufs[i].Len);
            ushort flags = (ushort)((bufs[i].Write ? Descriptor.FlagWrite : 0) | (i + 1 < bufs.Length ? Descriptor.FlagNext : 0));
            BinaryPrimitives.WriteUInt16LittleEndian(d[12..], flags);
            BinaryPrimitives.WriteUInt16LittleEndian(d[14..], _nextDesc[q]);
        }
        int avail = (int)QueueLayout.AvailRing(q);
        BinaryPrimitives.WriteUInt16LittleEndian(_image.AsSpan(avail + 4 + 2 * (_availIdx[q] % _size)), head);
        _availIdx[q]++;
        BinaryPrimitives.WriteUInt16LittleEndian(_image.AsSpan(avail + 2), _availIdx[q]);
        return this;
    }

    /// <summary>The target input: features, control byte, then the image up to the last byte used.</summary>
    public byte[] Build(ulong features, byte control = 0)
    {
        var input = new byte[QueueLayout.HeaderBytes + _top];
        BinaryPrimitives.WriteUInt64LittleEndian(input, features);
        input[8] = control;
        _image.AsSpan(0, _top).CopyTo(input.AsSpan(QueueLayout.HeaderBytes));
        return input;
    }
}
