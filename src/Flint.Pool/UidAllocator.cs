namespace Flint.Pool;

/// <summary>Hands out uids from a range, lowest free first, so no two live slots share one.</summary>
public sealed class UidAllocator(uint first, uint count)
{
    private readonly SortedSet<uint> _used = [];

    public uint Take()
    {
        lock (_used)
        {
            for (uint u = first; u < first + count; u++)
                if (_used.Add(u)) return u;
        }
        throw new PoolException(PoolErrorKind.LaunchFailed, $"All {count} slot uids from {first} are in use.");
    }

    public void Return(uint uid)
    {
        lock (_used) _used.Remove(uid);
    }

    public int InUse { get { lock (_used) return _used.Count; } }
}
