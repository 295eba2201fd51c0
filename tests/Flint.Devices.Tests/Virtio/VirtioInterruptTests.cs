using Flint.Devices.Virtio;

namespace Flint.Devices.Tests.Virtio;

public sealed class VirtioInterruptTests
{
    [Fact]
    public void Signals_set_bits_and_trigger_ack_clears()
    {
        var line = new CountingInterrupt();
        var irq = new VirtioInterrupt(line);
        irq.SignalUsedQueue(0);
        Assert.Equal(VirtioInterrupt.UsedBuffer, irq.Status);
        irq.SignalConfigChange();
        Assert.Equal(VirtioInterrupt.UsedBuffer | VirtioInterrupt.ConfigChange, irq.Status);
        Assert.Equal(2, line.Count);
        irq.Acknowledge(VirtioInterrupt.UsedBuffer);
        Assert.Equal(VirtioInterrupt.ConfigChange, irq.Status);
        irq.SignalUsedQueue(0); // already-set or not, the line fires every time
        irq.SignalUsedQueue(0);
        Assert.Equal(4, line.Count);
        irq.Reset();
        Assert.Equal(0u, irq.Status);
    }
}
