using System.Buffers.Binary;
using System.Diagnostics;
using Flint.Devices.Virtio;
using Flint.Devices.Virtio.VhostUser;
using Flint.Memory;
using Flint.Sys;

namespace Flint.Devices.Tests.Virtio.VhostUser;

/// <summary>
/// VhostUserBlock against a real backend (qemu-storage-daemon), without KVM: the test plays the guest with the shared
/// <see cref="GuestDriver"/> over memfd guest RAM, rings the doorbell eventfd as KVM's ioeventfd would, and waits on the
/// interrupt eventfd the backend writes (KVM's irqfd in a VM). Data moves only between the backend and guest memory.
/// </summary>
public sealed class VhostUserBlockBackendTests
{
    private const uint In = 0, Out = 1;

    private sealed class Rig : IDisposable
    {
        public Rig(QemuStorageDaemon backend, ushort queueSize = 16)
        {
            Memory = GuestMemory.CreateShared([(0UL, 0x100000UL)]);
            Driver = new GuestDriver(Memory, queueSize);
            Device = new VhostUserBlock(VhostUserFrontend.Connect(backend.SocketPath, TimeSpan.FromSeconds(5)), "vu0", writeback: false);
            Kick = new EventFd();
            Call = new EventFd();
            Interrupt = new VirtioInterrupt(new EventFdInterrupt(Call));
            Queue = new VirtQueue(VhostUserBlock.QueueSize);
            Driver.Configure(Queue);
            Device.UseDoorbells([Kick]);
        }

        public GuestMemory Memory { get; }
        public GuestDriver Driver { get; }
        public VhostUserBlock Device { get; }
        public EventFd Kick { get; }
        public EventFd Call { get; }
        public VirtioInterrupt Interrupt { get; }
        public VirtQueue Queue { get; }

        public bool Activate() => Device.Activate(Memory, [Queue], Interrupt, VirtioFeatures.Version1);

        /// <summary>Submits header + data + status, rings the doorbell and waits for the used entry; returns the status.</summary>
        public byte Run(uint type, ulong sector, ulong data, uint len, bool deviceWrites)
        {
            ulong h = Driver.Alloc(16);
            Memory.Write(h, type);
            Memory.Write(h + 4, 0u);
            Memory.Write(h + 8, sector);
            ulong st = Driver.Alloc(1, 0xff);
            ushort used = Driver.UsedIdx;
            Driver.Push((h, 16, false), (data, len, deviceWrites), (st, 1, true));
            Kick.Write(1);
            var sw = Stopwatch.StartNew();
            while (Driver.UsedIdx == used)
            {
                Assert.True(sw.Elapsed < TimeSpan.FromSeconds(10), "the backend did not complete the request in 10 s");
                Thread.Sleep(1);
            }
            return Memory.Read<byte>(st);
        }

        public void Dispose()
        {
            Device.Dispose();
            Kick.Dispose();
            Call.Dispose();
            Memory.Dispose();
        }
    }

    [Fact]
    public void Negotiates_and_reports_the_backends_config_space()
    {
        if (!QemuStorageDaemon.Available) return;
        using var qsd = new QemuStorageDaemon();
        using var rig = new Rig(qsd);
        // virtio_blk_config.capacity: the image's 512-byte sectors.
        Span<byte> cap = stackalloc byte[8];
        rig.Device.ReadConfig(0, cap);
        Assert.Equal((ulong)QemuStorageDaemon.Sectors, BinaryPrimitives.ReadUInt64LittleEndian(cap));
        Assert.Equal(VhostUserBlock.ConfigSpaceSize, (uint)rig.Device.ConfigSpace.Length);
        Assert.NotEqual(0UL, rig.Device.AckedProtocolFeatures & VhostUserRequest.ProtocolFeatureConfig);
        Assert.NotEqual(0UL, rig.Device.AvailableFeatures & VirtioFeatures.Version1);
        Assert.False(rig.Device.ReadOnly);
        Assert.True(rig.Device.Metrics.InitTimeUs > 0);
    }

    [Fact]
    public void Guest_reads_and_writes_sectors_that_the_backend_keeps_in_its_image()
    {
        if (!QemuStorageDaemon.Available) return;
        using var qsd = new QemuStorageDaemon();
        using var rig = new Rig(qsd);
        Assert.True(rig.Activate(), string.Join("\n", qsd.Log));
        Assert.True(rig.Device.Metrics.ActivateTimeUs > 0);
        Assert.Equal(0, Interlocked.Read(ref rig.Device.Metrics.ActivateFails));

        // Read sector 3: the backend writes it into guest memory.
        ulong buf = rig.Driver.Alloc(512);
        Assert.Equal(0, rig.Run(In, 3, buf, 512, deviceWrites: true));
        var got = new byte[512];
        rig.Memory.Read(buf, got);
        Assert.All(got, b => Assert.Equal(4, b));
        // The backend raised the interrupt through the call eventfd (an irqfd under KVM).
        Assert.True(rig.Call.Read() >= 1);

        // Write sector 5 with 0xab: the backend puts it in its image file.
        ulong wbuf = rig.Driver.Alloc(512, 0xab);
        Assert.Equal(0, rig.Run(Out, 5, wbuf, 512, deviceWrites: false));
        var image = qsd.ReadImage();
        Assert.All(image.AsSpan(5 * 512, 512).ToArray(), b => Assert.Equal(0xab, b));
        Assert.All(image.AsSpan(4 * 512, 512).ToArray(), b => Assert.Equal(5, b)); // its neighbours untouched
        Assert.All(image.AsSpan(6 * 512, 512).ToArray(), b => Assert.Equal(7, b));

        // And reads it back through the queue.
        ulong rbuf = rig.Driver.Alloc(512);
        Assert.Equal(0, rig.Run(In, 5, rbuf, 512, deviceWrites: true));
        rig.Memory.Read(rbuf, got);
        Assert.All(got, b => Assert.Equal(0xab, b));

        // A read past the end of the disk is the backend's to refuse (VIRTIO_BLK_S_IOERR), and Flint stays out of it.
        ulong obuf = rig.Driver.Alloc(512);
        Assert.NotEqual(0, rig.Run(In, QemuStorageDaemon.Sectors + 10, obuf, 512, deviceWrites: true));
    }

    [Fact]
    public void Config_refresh_rereads_the_backend_and_signals_a_config_change()
    {
        if (!QemuStorageDaemon.Available) return;
        using var qsd = new QemuStorageDaemon();
        using var rig = new Rig(qsd);
        Assert.True(rig.Activate());
        uint gen = rig.Device.ConfigGeneration;
        rig.Device.RefreshConfig();
        Assert.Equal(gen + 1, rig.Device.ConfigGeneration);
        Assert.Equal(VirtioInterrupt.ConfigChange, rig.Interrupt.Status & VirtioInterrupt.ConfigChange);
        Assert.True(rig.Device.Metrics.ConfigChangeTimeUs > 0);
    }

    [Fact]
    public void Private_guest_memory_cannot_be_shared_and_activation_fails_with_Firecrackers_reason()
    {
        if (!QemuStorageDaemon.Available) return;
        using var qsd = new QemuStorageDaemon();
        using var memory = GuestMemory.Create([(0UL, 0x100000UL)]);
        using var dev = new VhostUserBlock(VhostUserFrontend.Connect(qsd.SocketPath), "vu0", writeback: false);
        using var kick = new EventFd();
        using var call = new EventFd();
        dev.UseDoorbells([kick]);
        var q = new VirtQueue(VhostUserBlock.QueueSize);
        new GuestDriver(memory, 16).Configure(q);
        Assert.False(dev.Activate(memory, [q], new VirtioInterrupt(new EventFdInterrupt(call)), VirtioFeatures.Version1));
        Assert.Equal(1, Interlocked.Read(ref dev.Metrics.ActivateFails));
        Assert.False(dev.IsActivated);
    }

    [Fact]
    public void A_backend_killed_after_activation_leaves_the_device_answering_and_refresh_failing_promptly()
    {
        if (!QemuStorageDaemon.Available) return;
        using var qsd = new QemuStorageDaemon();
        using var rig = new Rig(qsd);
        Assert.True(rig.Activate());
        qsd.Kill();
        var sw = Stopwatch.StartNew();
        var e = Assert.Throws<VhostUserException>(rig.Device.RefreshConfig);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(3), $"took {sw.Elapsed}");
        Assert.StartsWith("Get config failed: ", e.Message);
        // Config reads still answer (the last config the backend gave).
        Span<byte> cap = stackalloc byte[8];
        rig.Device.ReadConfig(0, cap);
        Assert.Equal((ulong)QemuStorageDaemon.Sectors, BinaryPrimitives.ReadUInt64LittleEndian(cap));
    }
}
