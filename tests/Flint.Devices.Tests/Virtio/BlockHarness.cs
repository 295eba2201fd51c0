using Flint.Devices.Virtio;
using Flint.Devices.Virtio.Block;
using Flint.Memory;

namespace Flint.Devices.Tests.Virtio;

/// <summary>
/// A block device over a temp file, activated directly (no transport) on a queue laid out by a GuestDriver.
/// The file holds <see cref="Sectors"/> sectors; sector s is filled with byte (s + 1).
/// </summary>
public sealed class BlockHarness : IDisposable
{
    public const int Sectors = 64;
    public const ulong MemSize = 0x100000;

    public BlockHarness(bool readOnly = false, ushort queueSize = 16, string? serial = null, int sectors = Sectors, bool writeback = false,
        BlockIoEngine engine = BlockIoEngine.Sync)
    {
        FilePath = System.IO.Path.GetTempFileName();
        var content = new byte[sectors * 512];
        for (int s = 0; s < sectors; s++) content.AsSpan(s * 512, 512).Fill((byte)(s + 1));
        File.WriteAllBytes(FilePath, content);
        Memory = GuestMemory.Create([(0UL, MemSize)]);
        Driver = new GuestDriver(Memory, queueSize);
        Device = new VirtioBlock(FilePath, readOnly, serial, writeback: writeback, ioEngine: engine);
        Line = new CountingInterrupt();
        Interrupt = new VirtioInterrupt(Line);
        Queue = new VirtQueue(VirtioBlock.QueueSize);
        Driver.Configure(Queue);
        Assert.True(Device.Activate(Memory, [Queue], Interrupt, Device.AvailableFeatures & ~VirtioFeatures.RingEventIdx)); // these drivers do not do EVENT_IDX
    }

    public string FilePath { get; }
    public GuestMemory Memory { get; }
    public GuestDriver Driver { get; }
    public VirtioBlock Device { get; }
    public CountingInterrupt Line { get; }
    public VirtioInterrupt Interrupt { get; }
    public VirtQueue Queue { get; }

    /// <summary>A device-readable 16-byte request header.</summary>
    public ulong Header(uint type, ulong sector)
    {
        ulong a = Driver.Alloc(16);
        Memory.Write(a, type);
        Memory.Write(a + 4, 0u);
        Memory.Write(a + 8, sector);
        return a;
    }

    /// <summary>A status byte preset to 0xff so a test can tell whether the device wrote it.</summary>
    public ulong StatusByte() => Driver.Alloc(1, 0xff);

    public byte Status(ulong addr) => Memory.Read<byte>(addr);

    /// <summary>A queue notification; with the Async engine, also waits until what it submitted has completed.</summary>
    public void Process()
    {
        Device.ProcessQueue(0);
        if (Device.IoEngine == BlockIoEngine.Async) Assert.True(Device.CompleteInFlight(TimeSpan.FromSeconds(10)), "requests still in flight after 10 s");
    }

    /// <summary>Submits header + data + status and processes; returns (status byte, used len).</summary>
    public (byte Status, uint Len) Run(uint type, ulong sector, params (ulong Addr, uint Len, bool Write)[] data)
    {
        ulong h = Header(type, sector), st = StatusByte();
        var bufs = new List<(ulong, uint, bool)> { (h, 16, false) };
        bufs.AddRange(data);
        bufs.Add((st, 1, true));
        ushort used = Driver.UsedIdx;
        ushort head = Driver.Push(bufs.ToArray());
        Process();
        Assert.Equal((ushort)(used + 1), Driver.UsedIdx);
        var (id, len) = Driver.Used(used);
        Assert.Equal(head, (ushort)id);
        return (Status(st), len);
    }

    /// <summary>Reads one sector through the device and checks it carries the expected fill byte.</summary>
    public void AssertReadable(ulong sector = 3)
    {
        ulong buf = Driver.Alloc(512);
        var (s, len) = Run(VirtioBlockConstants.RequestIn, sector, (buf, 512, true));
        Assert.Equal(VirtioBlockConstants.StatusOk, s);
        Assert.Equal(513u, len);
        Assert.Equal((byte)(sector + 1), Memory.Read<byte>(buf + 511));
    }

    public void Dispose()
    {
        Device.Dispose();
        Memory.Dispose();
        File.Delete(FilePath);
    }
}
