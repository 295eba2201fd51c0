namespace Flint.Devices.Pci;

/// <summary>
/// Bus 0 of segment 0: 32 device slots, function 0 only, the host bridge in slot 0. Configuration cycles come from
/// <see cref="PciConfigMmio"/> (ECAM) and <see cref="PciConfigIo"/> (ports 0xCF8/0xCFC); an empty slot, another bus
/// or a function other than 0 reads as all ones (no device) and ignores writes.
/// </summary>
public sealed class PciRootBus
{
    public const int SlotCount = 32;

    private readonly IPciDevice?[] _slots = new IPciDevice?[SlotCount];

    public PciRootBus()
    {
        _slots[0] = new PciHostBridge();
    }

    /// <summary>Puts <paramref name="device"/> in the first free slot and returns the slot (PCI device number).</summary>
    public int Add(IPciDevice device)
    {
        for (int i = 0; i < SlotCount; i++)
        {
            if (Volatile.Read(ref _slots[i]) != null) continue;
            Volatile.Write(ref _slots[i], device);
            return i;
        }
        throw new PciSlotsExhaustedException();
    }

    /// <summary>
    /// Puts <paramref name="device"/> in <paramref name="slot"/> (a snapshot restore: the function goes back where the
    /// guest saw it, so a bus with holes left by an unplug keeps them). Throws when the slot is the host bridge's, past
    /// the bus or taken.
    /// </summary>
    public void AddAt(int slot, IPciDevice device)
    {
        if (slot <= 0 || slot >= SlotCount) throw new InvalidOperationException($"PCI slot {slot} cannot hold a device (slots 1-{SlotCount - 1}).");
        if (Interlocked.CompareExchange(ref _slots[slot], device, null) != null)
            throw new InvalidOperationException($"PCI slot {slot} is already taken.");
    }

    /// <summary>
    /// Empties <paramref name="slot"/> (PCI hot-unplug): from the next configuration cycle on it reads all ones, as
    /// an empty slot. The host bridge (slot 0) cannot be removed. Returns the device that was there, or null.
    /// </summary>
    public IPciDevice? Remove(int slot)
    {
        if (slot <= 0 || slot >= SlotCount) return null;
        return Interlocked.Exchange(ref _slots[slot], null);
    }

    /// <summary>Slots without a device (the host bridge's excluded).</summary>
    public int FreeSlots
    {
        get
        {
            int n = 0;
            for (int i = 1; i < SlotCount; i++) if (Volatile.Read(ref _slots[i]) == null) n++;
            return n;
        }
    }

    public IPciDevice? Device(int slot) => (uint)slot < SlotCount ? Volatile.Read(ref _slots[slot]) : null;

    /// <summary>A configuration read of <paramref name="register"/> of bus/device/function; all ones when absent.</summary>
    public uint Read(int bus, int device, int function, int register) =>
        bus == 0 && function == 0 && Device(device) is { } d ? d.ReadConfigRegister(register) : 0xffff_ffff;

    public void Write(int bus, int device, int function, int register, int offset, ReadOnlySpan<byte> data)
    {
        if (bus == 0 && function == 0 && Device(device) is { } d && PciConfigSpace.AccessFits(offset, data.Length))
            d.WriteConfigRegister(register, offset, data);
    }
}
