using Flint.Devices.Virtio;
using Flint.Memory;

namespace Flint.Devices.Tests.Virtio;

/// <summary>The one reader/writer over a descriptor chain: read once, any layout, validated.</summary>
public sealed class ChainBuffersTests : IDisposable
{
    private readonly GuestMemory _mem = GuestMemory.Create([(0UL, 0x100000UL)]);
    private readonly GuestDriver _driver;
    private readonly VirtQueue _q = new(16);
    private readonly ChainBuffers _buffers = new(16);

    public ChainBuffersTests()
    {
        _driver = new GuestDriver(_mem, 16);
        _driver.Configure(_q);
        Assert.True(_q.Activate(_mem));
    }

    public void Dispose() => _mem.Dispose();

    private bool LoadNext()
    {
        Assert.True(_q.TryPop(out var chain));
        return _buffers.Load(ref chain, _mem);
    }

    [Fact]
    public void Reads_and_writes_across_descriptor_boundaries()
    {
        ulong a = _driver.Alloc(3), b = _driver.Alloc(5), c = _driver.Alloc(2), d = _driver.Alloc(4);
        _mem.Write(a, [1, 2, 3]);
        _mem.Write(b, [4, 5, 6, 7, 8]);
        _driver.Push((a, 3, false), (b, 5, false), (0, 0, false), (c, 2, true), (d, 4, true));
        Assert.True(LoadNext());
        Assert.Equal(2, _buffers.ReadableCount);
        Assert.Equal(2, _buffers.WritableCount);
        Assert.Equal(5, _buffers.DescriptorCount);
        Assert.Equal(8UL, _buffers.ReadableBytes);
        Assert.Equal(6UL, _buffers.WritableBytes);

        var r = _buffers.Reader();
        Span<byte> two = stackalloc byte[2];
        Assert.True(r.ReadExact(two));
        Assert.Equal([1, 2], two.ToArray());
        Assert.Equal(2UL, r.Skip(2));
        Span<byte> rest = stackalloc byte[10];
        Assert.Equal(4, r.Read(rest));
        Assert.Equal([5, 6, 7, 8], rest[..4].ToArray());
        Assert.Equal(0UL, r.Remaining);

        var w = _buffers.Writer();
        Assert.Equal(1UL, w.Skip(1));
        Assert.Equal(5, w.Write([9, 9, 9, 9, 9, 9, 9]));
        Assert.Equal(6UL, w.Written);
        Assert.Equal(0, _mem.Read<byte>(c));
        Assert.Equal(9, _mem.Read<byte>(c + 1));
        Assert.Equal(9, _mem.Read<byte>(d + 3));
    }

    [Fact]
    public void Readable_after_writable_is_refused()
    {
        ulong a = _driver.Alloc(4), b = _driver.Alloc(4);
        _driver.Push((a, 4, true), (b, 4, false));
        Assert.False(LoadNext());
    }

    [Fact]
    public void Broken_chain_is_refused()
    {
        _driver.Push((0x40_0000_0000, 4, false)); // outside guest memory
        Assert.False(LoadNext());
    }

    [Fact]
    public void The_copy_does_not_follow_the_table()
    {
        ulong a = _driver.Alloc(64);
        ushort head = _driver.Push((a, 16, true));
        Assert.True(LoadNext());
        _driver.SetDesc(head, a, 64, Descriptor.FlagWrite, 0); // the guest grows the buffer after the pop
        Assert.Equal(16UL, _buffers.WritableBytes);
        var w = _buffers.Writer();
        Assert.Equal(16, w.Write(new byte[64]));
    }

    [Fact]
    public void Undo_pop_gives_the_chain_back()
    {
        ulong a = _driver.Alloc(4);
        ushort head = _driver.Push((a, 4, true));
        Assert.True(_q.TryPop(out var first));
        _q.UndoPop();
        Assert.True(_q.TryPop(out var again));
        Assert.Equal(head, first.HeadIndex);
        Assert.Equal(head, again.HeadIndex);
        Assert.False(_q.TryPop(out _));
    }
}
