using System.Buffers.Binary;
using Flint.Devices.Virtio;
using Flint.Devices.Virtio.Mem;
using Flint.Memory;
using static Flint.Devices.Virtio.Mem.VirtioMemConstants;

namespace Flint.Devices.Tests.Virtio.Mem;

/// <summary>Slot control without KVM: only the host protection flips, as the VMM's does around its KVM calls.</summary>
public sealed class RecordingSlots(HotplugArea area) : IHotplugSlots
{
    public List<(int Slot, bool Plugged)> Calls { get; } = [];
    public bool FailNext { get; set; }

    public void Plug(int slot)
    {
        if (FailNext) { FailNext = false; throw new InvalidOperationException("KVM_SET_USER_MEMORY_REGION: boom"); }
        area.SetSlotAccessible(slot, true);
        Calls.Add((slot, true));
    }

    public void Unplug(int slot)
    {
        area.SetSlotAccessible(slot, false);
        Calls.Add((slot, false));
    }
}

/// <summary>
/// A virtio-mem device over 4 MiB of boot RAM and a hotplug area at Firecracker's address (512 GiB), activated with
/// the existing guest-side queue driver; requests and responses live in boot RAM.
/// </summary>
public sealed class MemHarness : IDisposable
{
    public const ulong MiB = 1UL << 20;
    public const ulong AreaBase = 512UL << 30;

    public MemHarness(ulong totalMib = 512, ulong slotMib = 128, ulong blockMib = 2, bool activate = true, ulong? features = null)
    {
        Memory = GuestMemory.Create([(0UL, 4 * MiB)]);
        Area = Memory.AddHotplugArea(AreaBase, totalMib * MiB, slotMib * MiB);
        Slots = new RecordingSlots(Area);
        Device = new VirtioMem(Area, blockMib * MiB, Slots);
        Interrupt = new VirtioInterrupt(Line);
        Queue = new VirtQueue(QueueSize);
        Driver = GuestDriver.At(Memory, 0x1000, 16);
        Driver.Configure(Queue);
        if (activate) Assert.True(((IVirtioDevice)Device).Activate(Memory, [Queue], Interrupt, features ?? Device.AvailableFeatures));
    }

    public GuestMemory Memory { get; }
    public HotplugArea Area { get; }
    public RecordingSlots Slots { get; }
    public VirtioMem Device { get; }
    public CountingInterrupt Line { get; } = new();
    public VirtioInterrupt Interrupt { get; }
    public VirtQueue Queue { get; }
    public GuestDriver Driver { get; }

    /// <summary>Sends one request (type, addr, nb_blocks) and returns (response type, state, used length).</summary>
    public (ushort Type, ushort State, uint UsedLen) Request(ushort type, ulong addr = 0, ushort nb = 0)
    {
        ulong req = WriteRequest(type, addr, nb);
        ulong resp = Driver.Alloc(ResponseSize, 0xee);
        Driver.Push((req, RequestSize, false), (resp, ResponseSize, true));
        Device.ProcessQueue(0);
        var used = Driver.TakeUsed();
        Assert.Single(used);
        return (Memory.Read<ushort>(resp), Memory.Read<ushort>(resp + ResponseStateOffset), used[0].Len);
    }

    public ulong WriteRequest(ushort type, ulong addr, ushort nb)
    {
        ulong req = Driver.Alloc(RequestSize);
        Memory.Write(req, type);
        Memory.Write(req + RequestAddrOffset, addr);
        Memory.Write(req + RequestNbBlocksOffset, nb);
        return req;
    }

    public ulong Config(int offset)
    {
        Span<byte> b = stackalloc byte[8];
        Device.ReadConfig((ulong)offset, b);
        return BinaryPrimitives.ReadUInt64LittleEndian(b);
    }

    public void Dispose() => Memory.Dispose();
}
