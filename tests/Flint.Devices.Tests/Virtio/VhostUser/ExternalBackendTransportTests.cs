using System.Buffers.Binary;
using Flint.Devices.Virtio;
using Flint.Memory;

namespace Flint.Devices.Tests.Virtio.VhostUser;

/// <summary>
/// The transport's side of a device another process serves: InterruptStatus follows Firecracker's is_vhost_user
/// mapping (the backend raises the irqfd without setting a status bit), and the mapping reaches a VirtioDevice subclass
/// through the interface (a default interface member alone would not).
/// </summary>
public sealed class ExternalBackendTransportTests
{
    private sealed class ExternalDevice : VirtioDevice
    {
        private static readonly ushort[] s_sizes = [16];
        public override uint DeviceType => VirtioDeviceType.Block;
        public override ulong AvailableFeatures => VirtioFeatures.Version1;
        public override ReadOnlySpan<ushort> QueueMaxSizes => s_sizes;
        public override void ReadConfig(ulong offset, Span<byte> data) => data.Clear();
        public override void WriteConfig(ulong offset, ReadOnlySpan<byte> data) { }
        public override void ProcessQueue(int index) { }
        public override bool ServedByExternalBackend => true;
    }

    private static uint ReadStatus(MmioTransport t)
    {
        Span<byte> b = stackalloc byte[4];
        t.Read(MmioRegisters.InterruptStatus, b);
        return BinaryPrimitives.ReadUInt32LittleEndian(b);
    }

    [Fact]
    public void Interrupt_status_reports_a_used_buffer_unless_only_a_config_change_is_pending()
    {
        using var mem = GuestMemory.Create([(0UL, 0x10000UL)]);
        var dev = new ExternalDevice();
        Assert.True(((IVirtioDevice)dev).ServedByExternalBackend);
        using var t = new MmioTransport(dev, mem, new CountingInterrupt());
        Assert.Equal(VirtioInterrupt.UsedBuffer, ReadStatus(t)); // nothing set: the backend's irqfd may have fired
        t.Interrupt.SignalConfigChange();
        Assert.Equal(VirtioInterrupt.ConfigChange, ReadStatus(t));
        t.Interrupt.SignalUsedQueue(0);
        Assert.Equal(VirtioInterrupt.UsedBuffer, ReadStatus(t)); // both: Firecracker reports VRING
    }

    [Fact]
    public void An_ordinary_device_keeps_the_real_status_bits()
    {
        using var h = new BlockHarness();
        using var t = new MmioTransport(h.Device, h.Memory, new CountingInterrupt());
        Assert.False(((IVirtioDevice)h.Device).ServedByExternalBackend);
        Assert.Equal(0u, ReadStatus(t));
    }
}
