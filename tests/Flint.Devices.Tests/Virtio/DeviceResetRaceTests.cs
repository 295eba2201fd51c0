using Flint.Devices.Virtio;
using Flint.Memory;

namespace Flint.Devices.Tests.Virtio;

/// <summary>
/// A reset from a vCPU while the event loop is serving a queue: the device must not lose its memory and queues
/// halfway through the request. Reset marks the device inactive, waits at the device's lock (OnReset), and only
/// then drops them.
/// </summary>
public sealed class DeviceResetRaceTests
{
    private sealed class SlowDevice : VirtioDevice
    {
        private static readonly ushort[] s_sizes = [16];
        private readonly Lock _lock = new();
        public readonly ManualResetEventSlim Entered = new();
        public readonly ManualResetEventSlim Gate = new();
        public bool SawMemory;
        public bool SawQueues;

        public override uint DeviceType => 99;
        public override ulong AvailableFeatures => VirtioFeatures.Version1;
        public override ReadOnlySpan<ushort> QueueMaxSizes => s_sizes;
        public override void ReadConfig(ulong offset, Span<byte> data) => data.Clear();
        public override void WriteConfig(ulong offset, ReadOnlySpan<byte> data) { }

        public override void ProcessQueue(int index)
        {
            lock (_lock)
            {
                Entered.Set();
                Gate.Wait(TimeSpan.FromSeconds(10));
                SawMemory = Memory != null;
                SawQueues = Queues.Length == 1;
            }
        }

        protected override void OnReset() { lock (_lock) { } }
    }

    [Fact]
    public void Reset_waits_for_the_request_in_progress_before_dropping_memory()
    {
        using var mem = GuestMemory.Create([(0UL, 0x100000UL)]);
        var driver = new GuestDriver(mem, 16);
        var q = new VirtQueue(16);
        driver.Configure(q);
        var dev = new SlowDevice();
        Assert.True(dev.Activate(mem, [q], new VirtioInterrupt(new CountingInterrupt()), VirtioFeatures.Version1));

        var loop = new Thread(() => dev.ProcessQueue(0));
        loop.Start();
        Assert.True(dev.Entered.Wait(TimeSpan.FromSeconds(10)));
        var vcpu = new Thread(dev.Reset);
        vcpu.Start();
        // Give the reset time to get as far as it can while the request is still being served.
        Thread.Sleep(200);
        Assert.True(vcpu.IsAlive); // held at the device's barrier
        Assert.False(dev.IsActivated); // but new work already sees the device inactive
        dev.Gate.Set();
        Assert.True(loop.Join(TimeSpan.FromSeconds(10)));
        Assert.True(vcpu.Join(TimeSpan.FromSeconds(10)));

        Assert.True(dev.SawMemory);
        Assert.True(dev.SawQueues);
    }
}
