using Flint.Memory;
using Flint.Snapshot;
using Flint.Sys;

namespace Flint.Devices.Acpi;

/// <summary>
/// The Virtual Machine Generation ID device (Microsoft's VMGenID spec; Firecracker's devices/acpi/vmgenid.rs): a
/// cryptographically random 128-bit value in guest memory, described in the DSDT (_SB_.VGEN, ADDR), that changes
/// whenever the VM runs from a snapshot so the guest kernel reseeds its RNG and user space can tell clones apart. A
/// new ID is written and the guest notified (GED interrupt, Notify 0x80) on every snapshot restore.
/// </summary>
public sealed class VmGenId
{
    public const int IdSize = 16;
    private readonly byte[] _id = new byte[IdSize];

    /// <param name="address">Guest-physical address of the 16 bytes (8-aligned, inside memory the guest does not use as RAM).</param>
    public VmGenId(ulong address, uint gsi, IInterrupt interrupt)
    {
        if (address % 8 != 0) throw new ArgumentException($"VMGenID address 0x{address:x} is not 8-byte aligned", nameof(address));
        Address = address;
        Gsi = gsi;
        Interrupt = interrupt;
        // getrandom(2) through Flint.Sys: System.Security.Cryptography loads OpenSSL at run time, which a static flint
        // cannot (it died at InstanceStart under seccomp, mapping the library executable).
        Libc.RandomBytes(IdSize).CopyTo(_id, 0);
    }

    public ulong Address { get; }
    public uint Gsi { get; }
    public IInterrupt Interrupt { get; }

    /// <summary>The current generation ID, in the byte order the guest reads it (Firecracker's u128 little-endian).</summary>
    public ReadOnlySpan<byte> GenerationId => _id;

    /// <summary>Boot: the ID goes into guest memory before the first vCPU runs (Firecracker's activate).</summary>
    public void Activate(GuestMemory mem) => mem.Write(Address, _id);

    /// <summary>
    /// After a snapshot restore (before the vCPUs run): a fresh ID in guest memory, then the interrupt, so the guest's
    /// vmgenid driver reads the new value when it handles the notification.
    /// </summary>
    public void OnRestored(GuestMemory mem)
    {
        Libc.RandomBytes(IdSize).CopyTo(_id, 0);
        mem.Write(Address, _id);
        Interrupt.Trigger();
    }

    /// <summary>GSI, address and the ID the snapshot was taken with (the restore replaces the ID; it is kept for inspection).</summary>
    public void SaveState(StateWriter w)
    {
        w.U32(Gsi);
        w.U64(Address);
        w.Raw(_id);
    }

    /// <summary>
    /// Reads a saved VMGenID and checks it describes this device: the DSDT in the restored memory points the guest at
    /// the saved address and GSI, so a build that put them elsewhere would notify the wrong line. Returns the saved ID.
    /// </summary>
    public byte[] CheckState(StateReader r)
    {
        uint gsi = r.U32();
        ulong address = r.U64();
        var saved = new byte[IdSize];
        r.Raw(saved);
        if (gsi != Gsi || address != Address)
            throw new SnapshotFormatException($"The snapshot's VMGenID (GSI {gsi}, address 0x{address:x}) is not this build's (GSI {Gsi}, address 0x{Address:x}).");
        return saved;
    }
}
