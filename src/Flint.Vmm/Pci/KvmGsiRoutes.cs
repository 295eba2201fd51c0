using Flint.Kvm;
using Flint.Vmm.Logging;

namespace Flint.Vmm.Pci;

/// <summary>
/// The VM's GSI routing table as Flint owns it once MSI is in use. KVM_SET_GSI_ROUTING replaces the whole table, so
/// this keeps KVM's default irqchip routes (what KVM_CREATE_IRQCHIP installed: GSI 0-15 to both PICs and the
/// IOAPIC, 16-23 to the IOAPIC; serial, i8042 and the PIT keep working) and adds one MSI route per enabled vector.
/// GSIs for MSI start after the IOAPIC's (Firecracker's GSI_MSI_START = 24). Called from vCPU threads (MSI-X
/// table writes), hence the lock.
/// </summary>
public sealed class KvmGsiRoutes(IPciVm vm)
{
    public const uint FirstMsiGsi = 24;
    /// <summary>Firecracker's GSI_MSI_END; KVM's table holds up to 4096 GSIs.</summary>
    public const uint LastMsiGsi = 4095;
    private const uint IoapicPins = 24;

    private readonly Lock _lock = new();
    private readonly Dictionary<uint, KvmIrqRoutingEntry> _msi = [];
    private KvmIrqRoutingEntry[] _table = [];
    private uint _nextGsi = FirstMsiGsi;
    // GSIs an unplugged function gave back, lowest first: plug/unplug cycles reuse them instead of running out.
    private readonly SortedSet<uint> _freed = [];

    /// <summary>A free GSI for an MSI vector.</summary>
    public uint AllocateGsi()
    {
        lock (_lock)
        {
            if (_freed.Count > 0)
            {
                uint g = _freed.Min;
                _freed.Remove(g);
                return g;
            }
            if (_nextGsi > LastMsiGsi) throw new InvalidOperationException("No GSI left for MSI-X vectors.");
            return _nextGsi++;
        }
    }

    /// <summary>GSIs handed out and not given back.</summary>
    public int InUse { get { lock (_lock) return (int)(_nextGsi - FirstMsiGsi) - _freed.Count; } }

    /// <summary>Routes currently in KVM's table besides the irqchip ones.</summary>
    public int MsiRoutes { get { lock (_lock) return _msi.Count; } }

    /// <summary>
    /// Gives <paramref name="gsi"/> back (PCI hot-unplug): its MSI route leaves KVM's table now, and a later
    /// <see cref="AllocateGsi"/> may hand it out again. The caller has already unbound its irqfd.
    /// </summary>
    public void FreeGsi(uint gsi)
    {
        if (gsi < FirstMsiGsi || gsi > LastMsiGsi) return;
        Set(gsi, null);
        lock (_lock)
        {
            if (gsi >= _nextGsi) return;
            _freed.Add(gsi);
        }
    }

    /// <summary>Routes <paramref name="gsi"/> to an MSI message, or (when <paramref name="message"/> is null) drops its route.</summary>
    public bool Set(uint gsi, (uint AddressLow, uint AddressHigh, uint Data)? message)
    {
        lock (_lock)
        {
            if (message is { } m) _msi[gsi] = KvmIrqRoutingEntry.ToMsi(gsi, m.AddressLow, m.AddressHigh, m.Data);
            else if (!_msi.Remove(gsi)) return true;
            try
            {
                vm.SetGsiRouting(Build());
                return true;
            }
            catch (KvmException e)
            {
                // The guest's message was refused (KVM validates little, but the table may be full): the vector
                // stays undelivered and its interrupts stay pending, rather than the VMM going down.
                _msi.Remove(gsi);
                Logger.Warn($"MSI route for GSI {gsi} refused by KVM: {e.Message}");
                return false;
            }
        }
    }

    private KvmIrqRoutingEntry[] Build()
    {
        int legacy = 16 * 2 + (int)(IoapicPins - 16);
        if (_table.Length != legacy + _msi.Count) _table = new KvmIrqRoutingEntry[legacy + _msi.Count];
        int n = 0;
        for (uint gsi = 0; gsi < IoapicPins; gsi++)
        {
            _table[n++] = KvmIrqRoutingEntry.ToIrqchip(gsi, KvmIrqRoutingEntry.IrqchipIoapic, gsi);
            if (gsi < 16)
                _table[n++] = KvmIrqRoutingEntry.ToIrqchip(gsi, gsi < 8 ? KvmIrqRoutingEntry.IrqchipPicMaster : KvmIrqRoutingEntry.IrqchipPicSlave, gsi % 8);
        }
        foreach (var e in _msi.Values) _table[n++] = e;
        return _table;
    }
}
