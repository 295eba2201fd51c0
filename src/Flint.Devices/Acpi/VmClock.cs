using System.Buffers.Binary;
using Flint.Memory;
using Flint.Snapshot;

namespace Flint.Devices.Acpi;

/// <summary>
/// The VMClock device (Firecracker's devices/acpi/vmclock.rs; Linux's ptp_vmclock): a page of guest memory holding a
/// <see cref="VmClockAbi"/> structure and described in the DSDT (_SB_.VCLK). Flint, as Firecracker, publishes no
/// clock (counter id invalid, status unknown) but a disruption marker and a VM generation counter, both bumped on
/// every snapshot restore under the seqlock (seq_count odd while they change), then the guest is notified.
/// The VMM's copy of the structure is the truth; guest memory gets each field as it changes.
/// </summary>
public sealed class VmClock
{
    public const ulong PageSize = 0x1000;
    private readonly byte[] _abi = new byte[VmClockAbi.Size];

    public VmClock(ulong address, uint gsi, IInterrupt interrupt)
    {
        if (address % PageSize != 0) throw new ArgumentException($"VMClock address 0x{address:x} is not page aligned", nameof(address));
        Address = address;
        Gsi = gsi;
        Interrupt = interrupt;
        Put32(VmClockAbi.MagicOffset, VmClockAbi.Magic);
        Put32(VmClockAbi.SizeOffset, (uint)PageSize);
        BinaryPrimitives.WriteUInt16LittleEndian(_abi.AsSpan(VmClockAbi.VersionOffset), VmClockAbi.Version);
        _abi[VmClockAbi.CounterIdOffset] = VmClockAbi.CounterInvalid;
        _abi[VmClockAbi.ClockStatusOffset] = VmClockAbi.StatusUnknown;
        Put64(VmClockAbi.FlagsOffset, VmClockAbi.FlagVmGenCounterPresent | VmClockAbi.FlagNotificationPresent);
    }

    public ulong Address { get; }
    public uint Gsi { get; }
    public IInterrupt Interrupt { get; }

    public uint SeqCount => Get32(VmClockAbi.SeqCountOffset);
    public ulong DisruptionMarker => Get64(VmClockAbi.DisruptionMarkerOffset);
    public ulong VmGenerationCounter => Get64(VmClockAbi.VmGenerationCounterOffset);
    public ReadOnlySpan<byte> Abi => _abi;

    /// <summary>Boot: the whole structure into guest memory before the first vCPU runs.</summary>
    public void Activate(GuestMemory mem) => mem.Write(Address, _abi);

    /// <summary>
    /// After a snapshot restore: seq_count made odd, disruption_marker and vm_generation_counter incremented, seq_count
    /// incremented to even again, each field written to guest memory in that order with release fences between (the
    /// guest's reader retries while seq_count is odd or changed), then the notification.
    /// </summary>
    public void OnRestored(GuestMemory mem)
    {
        WriteField32(mem, VmClockAbi.SeqCountOffset, SeqCount | 1);
        Interlocked.MemoryBarrier();
        WriteField64(mem, VmClockAbi.DisruptionMarkerOffset, unchecked(DisruptionMarker + 1));
        WriteField64(mem, VmClockAbi.VmGenerationCounterOffset, unchecked(VmGenerationCounter + 1));
        Interlocked.MemoryBarrier();
        WriteField32(mem, VmClockAbi.SeqCountOffset, unchecked(SeqCount + 1));
        Interrupt.Trigger();
    }

    public void SaveState(StateWriter w)
    {
        w.U32(Gsi);
        w.U64(Address);
        w.Raw(_abi);
    }

    /// <summary>
    /// Takes the saved structure back (Firecracker restores its copy the same way) after checking address and GSI match
    /// this build, and that it is a version-1 vmclock_abi of one page (a file edited by hand must not plant a
    /// structure the guest would misread).
    /// </summary>
    public void RestoreState(StateReader r)
    {
        uint gsi = r.U32();
        ulong address = r.U64();
        var abi = new byte[VmClockAbi.Size];
        r.Raw(abi);
        if (gsi != Gsi || address != Address)
            throw new SnapshotFormatException($"The snapshot's VMClock (GSI {gsi}, address 0x{address:x}) is not this build's (GSI {Gsi}, address 0x{Address:x}).");
        if (BinaryPrimitives.ReadUInt32LittleEndian(abi) != VmClockAbi.Magic
            || BinaryPrimitives.ReadUInt32LittleEndian(abi.AsSpan(VmClockAbi.SizeOffset)) != PageSize
            || BinaryPrimitives.ReadUInt16LittleEndian(abi.AsSpan(VmClockAbi.VersionOffset)) != VmClockAbi.Version)
            throw new SnapshotFormatException("The snapshot's VMClock structure is not a version 1 vmclock_abi.");
        abi.CopyTo(_abi, 0);
    }

    private void WriteField32(GuestMemory mem, int offset, uint v)
    {
        Put32(offset, v);
        mem.Write(Address + (ulong)offset, _abi.AsSpan(offset, 4));
    }

    private void WriteField64(GuestMemory mem, int offset, ulong v)
    {
        Put64(offset, v);
        mem.Write(Address + (ulong)offset, _abi.AsSpan(offset, 8));
    }

    private uint Get32(int o) => BinaryPrimitives.ReadUInt32LittleEndian(_abi.AsSpan(o));
    private ulong Get64(int o) => BinaryPrimitives.ReadUInt64LittleEndian(_abi.AsSpan(o));
    private void Put32(int o, uint v) => BinaryPrimitives.WriteUInt32LittleEndian(_abi.AsSpan(o), v);
    private void Put64(int o, ulong v) => BinaryPrimitives.WriteUInt64LittleEndian(_abi.AsSpan(o), v);
}
