using System.Numerics;

namespace Flint.Devices.Virtio.Mem;

/// <summary>One bit per block of the hotplug area: set when the guest has it plugged.</summary>
public sealed class PluggedBlocks
{
    private readonly ulong[] _words;

    public PluggedBlocks(long count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        Count = count;
        _words = new ulong[(count + 63) / 64];
    }

    public long Count { get; }

    public bool this[long block] => (_words[block >> 6] & (1UL << (int)(block & 63))) != 0;

    /// <summary>How many of [start, start+n) are plugged; the range must lie inside.</summary>
    public long CountSet(long start, long n)
    {
        long set = 0;
        long i = start, end = start + n;
        while (i < end)
        {
            int bit = (int)(i & 63);
            int take = (int)Math.Min(64 - bit, end - i);
            ulong mask = take == 64 ? ulong.MaxValue : ((1UL << take) - 1) << bit;
            set += BitOperations.PopCount(_words[i >> 6] & mask);
            i += take;
        }
        return set;
    }

    /// <summary>Sets or clears [start, start+n); the range must lie inside.</summary>
    public void Fill(long start, long n, bool value)
    {
        long i = start, end = start + n;
        while (i < end)
        {
            int bit = (int)(i & 63);
            int take = (int)Math.Min(64 - bit, end - i);
            ulong mask = take == 64 ? ulong.MaxValue : ((1UL << take) - 1) << bit;
            if (value) _words[i >> 6] |= mask;
            else _words[i >> 6] &= ~mask;
            i += take;
        }
    }

    /// <summary>The bits as bytes (snapshot state), one bit per block, little-endian words.</summary>
    public ulong[] Words => _words;
}
