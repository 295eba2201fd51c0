using System.Runtime.InteropServices;

namespace Flint.Kvm;

/// <summary>GSI routing: what MSI-X delivery through KVM needs (with the irqfds of <see cref="RegisterIrqfd"/>).</summary>
// SAFETY: the routing table is built in a stack/pinned buffer of exactly the header plus its entries, passed to one ioctl.
public sealed unsafe partial class Vm
{
    /// <summary>
    /// Replaces the VM's whole GSI routing table (KVM_SET_GSI_ROUTING). The caller passes every route it wants,
    /// the irqchip ones included: KVM drops any GSI the table does not name.
    /// </summary>
    public void SetGsiRouting(ReadOnlySpan<KvmIrqRoutingEntry> entries)
    {
        int bytes = sizeof(KvmIrqRoutingHeader) + entries.Length * sizeof(KvmIrqRoutingEntry);
        // A managed buffer, not malloc: this runs on vCPU threads, and a route change is rare (a guest MSI-X write).
        var buf = new byte[bytes];
        // SAFETY: buf is pinned for the block and sized for the header plus every entry, which are written in bounds;
        // KVM copies the table during the ioctl and keeps no pointer to it.
        fixed (byte* p = buf)
        {
            var header = (KvmIrqRoutingHeader*)p;
            header->Nr = (uint)entries.Length;
            var dst = (KvmIrqRoutingEntry*)(p + sizeof(KvmIrqRoutingHeader));
            for (int i = 0; i < entries.Length; i++) dst[i] = entries[i];
            Ioctl(Ioctls.KVM_SET_GSI_ROUTING, p, "KVM_SET_GSI_ROUTING");
        }
    }
}

/// <summary>struct kvm_irq_routing without its flexible array of entries.</summary>
[StructLayout(LayoutKind.Sequential)]
public struct KvmIrqRoutingHeader
{
    public uint Nr, Flags;
}

/// <summary>struct kvm_irq_routing_entry (48 bytes): a GSI routed to an irqchip pin or to an MSI message.</summary>
[StructLayout(LayoutKind.Explicit, Size = 48)]
public struct KvmIrqRoutingEntry
{
    public const uint TypeIrqchip = 1, TypeMsi = 2;
    public const uint IrqchipPicMaster = 0, IrqchipPicSlave = 1, IrqchipIoapic = 2;

    [FieldOffset(0)] public uint Gsi;
    [FieldOffset(4)] public uint Type;
    [FieldOffset(8)] public uint Flags;
    // u.irqchip
    [FieldOffset(16)] public uint Irqchip;
    [FieldOffset(20)] public uint Pin;
    // u.msi
    [FieldOffset(16)] public uint MsiAddressLow;
    [FieldOffset(20)] public uint MsiAddressHigh;
    [FieldOffset(24)] public uint MsiData;

    public static KvmIrqRoutingEntry ToIrqchip(uint gsi, uint chip, uint pin) =>
        new() { Gsi = gsi, Type = TypeIrqchip, Irqchip = chip, Pin = pin };

    public static KvmIrqRoutingEntry ToMsi(uint gsi, uint addressLow, uint addressHigh, uint data) =>
        new() { Gsi = gsi, Type = TypeMsi, MsiAddressLow = addressLow, MsiAddressHigh = addressHigh, MsiData = data };
}
