namespace Flint.Vmm.Pci;

/// <summary>
/// Where a snapshot restore puts each virtio-pci function: the slot and BAR the guest saw when the snapshot was
/// taken, by device key (Firecracker restores each device at its saved sbdf and BAR). A VM that unplugged slot 1 and
/// plugged a drive into slot 3 comes back exactly so, empty slot 1 included. Each place is taken once, by the build
/// (<see cref="PciDevices.Plug(Flint.Devices.Virtio.IVirtioDevice, string)"/>); a later hotplug finds none left and
/// takes the lowest free slot and BAR as usual. The snapshot loader checked, before the build, that the places are
/// distinct and inside the bus and window and that the configuration builds exactly these devices.
/// </summary>
public sealed class PciPlacement
{
    private readonly Dictionary<PciDeviceKey, (int Slot, ulong Bar)> _places = [];

    /// <summary>Records where <paramref name="key"/> goes; a key twice is refused (the section's parser refuses it first).</summary>
    public void Add(PciDeviceKey key, int slot, ulong bar)
    {
        if (!_places.TryAdd(key, (slot, bar))) throw new InvalidOperationException($"The snapshot places {key} twice.");
    }

    /// <summary>
    /// The interfaces that served MMDS when the snapshot was taken: the restore gives the stack to these only (a
    /// hot-plugged interface has none even when mmds-config names its id, as in Firecracker).
    /// </summary>
    public HashSet<string> MmdsInterfaces { get; } = [];

    /// <summary>Places not taken yet.</summary>
    public int Count => _places.Count;

    /// <summary>The keys of the places not taken yet.</summary>
    public IEnumerable<PciDeviceKey> Keys => _places.Keys;

    /// <summary>Takes the place of <paramref name="key"/>; false when it has none (a device plugged after the restore).</summary>
    public bool TryTake(PciDeviceKey key, out int slot, out ulong bar)
    {
        if (_places.Remove(key, out var p))
        {
            (slot, bar) = p;
            return true;
        }
        (slot, bar) = (0, 0);
        return false;
    }
}
