using System.Buffers.Binary;
using Flint.Arch.X86;
using Flint.Devices.Pci;
using Flint.Devices.Pci.Msix;
using Flint.Devices.Virtio;
using Flint.Devices.Virtio.Pci;
using Flint.Devices.Virtio.Rng;
using Flint.Memory;
using Flint.Snapshot;
using Flint.Vmm.Snapshot;

namespace Flint.Vmm.Tests;

/// <summary>
/// A snapshot's "pci" section as the creator writes it (version, the host bridge, then per function its slot, a real
/// virtio-rng function's state and its runtime part), for the section's tests (PciSnapshotSectionTests) and the
/// snapshot fuzz target's seed (linked into tests/fuzz/Flint.Fuzz).
/// </summary>
internal static class PciSectionSample
{
    private sealed class NoVectors(int count) : IMsiVectors
    {
        public int Count { get; } = count;
        public bool Route(int index, MsiMessage message, bool enabled) => true;
        public void Trigger(int index) { }
    }

    /// <summary>A real virtio-rng function's state at <paramref name="bar"/>, as the creator writes it.</summary>
    public static VirtioPciTransportState RngState(ulong bar)
    {
        using var mem = GuestMemory.Create([(0UL, 0x10000UL)]);
        using var rng = new VirtioRng();
        using var t = new VirtioPciTransport(rng, mem, bar, new NoVectors(2));
        return t.CaptureState();
    }

    /// <summary>The section with a virtio-rng function per (slot, BAR), ids "rng{slot}", no flags.</summary>
    public static StateWriter Write(uint version = PciStateCodec.Version, params (int Slot, ulong Bar)[] functions) =>
        Write(version, functions.Select(f => new Fn(f.Slot, f.Bar)).ToArray(), VirtioDeviceType.Rng);

    /// <summary>One virtio-rng function of a hand-made section: its slot, BAR, id (default "rng{slot}") and flags.</summary>
    internal sealed record Fn(int Slot, ulong Bar, string? Id = null, byte Flags = 0);

    /// <param name="deviceType">Written over the rng's type in each transport state (a hand-made net function).</param>
    public static StateWriter Write(uint version, Fn[] functions, uint deviceType)
    {
        var w = new StateWriter();
        w.U32(version);
        new PciHostBridge().SaveState(w);
        w.U32((uint)functions.Length);
        foreach (var (slot, bar, id, flags) in functions)
        {
            w.U8((byte)slot);
            if (version >= 2)
            {
                w.String(id ?? $"rng{slot}"); // version 2: the device's id and its flags
                w.U8(flags);
            }
            // Built at the window's start, then the BAR field set to what the caller wants (a function cannot be
            // built at an unaligned address; a file can say anything).
            var t = new StateWriter();
            RngState(Layout.PciMmio64Start).Write(t);
            var bytes = t.ToArray();
            BinaryPrimitives.WriteUInt32LittleEndian(bytes, deviceType);
            BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(4), bar);
            w.Raw(bytes);
            w.Bytes([0, 0, 0, 0]); // runtime: config generation 0
        }
        return w;
    }
}
