using Flint.Devices.Logging;
using Flint.Memory;

namespace Flint.Devices.Virtio.Pmem;

/// <summary>
/// The MMIO side of a read-only pmem window. KVM maps a read-only slot for reads only; a guest store into it exits to
/// the VMM as an MMIO write (x86: when KVM can decode the instruction), which lands here: it is discarded with a
/// rate-limited warning, never applied and never fatal (docs/pmem.md: "it will be discarded and the warning log will
/// be printed"). Reads normally never exit; one that does is served from the mapping.
/// </summary>
public sealed class PmemReadOnlyWindow : IBusDevice
{
    private readonly PmemMapping _mapping;

    public PmemReadOnlyWindow(string id, PmemMapping mapping)
    {
        _mapping = mapping;
        Log = new DeviceLog($"VirtioPmem {id}");
    }

    public DeviceLog Log { get; }

    /// <summary>Guest writes discarded so far.</summary>
    public long DiscardedWrites => Interlocked.Read(ref _discarded);
    private long _discarded;

    public void Read(ulong offset, Span<byte> data) => _mapping.Read(offset, data);

    public void Write(ulong offset, ReadOnlySpan<byte> data)
    {
        Interlocked.Increment(ref _discarded);
        Log.Warn("guest write to the read-only pmem window discarded, offset", (long)offset);
    }
}
