using Flint.Devices.Logging;

namespace Flint.Devices.Tests.Virtio;

/// <summary>
/// Device logging is rate limited per device and says how many lines it dropped. These tests swap the process-wide
/// sink, so their collection runs alone (no other device test logs into it meanwhile).
/// </summary>
[Collection(DeviceLogSinkCollection.Name)]
public sealed class DeviceLogTests
{
    private sealed class ListSink : IDeviceLogSink
    {
        public readonly List<string> Lines = [];
        public void Write(DeviceLogLevel level, string device, string message)
        {
            lock (Lines) Lines.Add($"{level}:{device}:{message}");
        }
    }

    [Fact]
    public void Burst_then_one_per_second_with_the_dropped_count()
    {
        var sink = new ListSink();
        var old = DeviceLog.Sink;
        DeviceLog.Sink = sink;
        try
        {
            long now = 0;
            var log = new DeviceLog("TestDevice", () => now);
            for (int i = 0; i < 100; i++) log.Error("bad request", i);
            Assert.Equal(DeviceLog.Burst, sink.Lines.Count);
            Assert.Equal("Error:TestDevice:bad request: 0", sink.Lines[0]);
            Assert.Equal(100 - DeviceLog.Burst, log.SuppressedTotal);

            now += 1000 * DeviceLog.RefillSeconds;
            log.Warn("again");
            Assert.Equal(DeviceLog.Burst + 1, sink.Lines.Count);
            Assert.Equal($"Warning:TestDevice:again ({100 - DeviceLog.Burst} similar lines suppressed)", sink.Lines[^1]);
            log.Warn("and again");
            Assert.Equal(DeviceLog.Burst + 1, sink.Lines.Count);
        }
        finally
        {
            DeviceLog.Sink = old;
        }
    }

    [Fact]
    public void A_failed_queue_is_logged_and_counted()
    {
        var sink = new ListSink();
        var old = DeviceLog.Sink;
        DeviceLog.Sink = sink;
        try
        {
            using var mem = Flint.Memory.GuestMemory.Create([(0UL, 0x100000UL)]);
            var driver = new GuestDriver(mem, 16);
            var q = new Flint.Devices.Virtio.VirtQueue(16);
            driver.Configure(q);
            using var rng = new Flint.Devices.Virtio.Rng.VirtioRng();
            Assert.True(rng.Activate(mem, [q], new Flint.Devices.Virtio.VirtioInterrupt(new CountingInterrupt()), rng.AvailableFeatures));
            driver.SetAvailIdx(17); // more pending than the queue holds: the driver is broken
            rng.ProcessQueue(0);
            rng.ProcessQueue(0);
            Assert.True(q.IsFailed);
            Assert.Equal(1, q.Failures);
            Assert.Single(sink.Lines, l => l.StartsWith("Error:VirtioRng:queue failed", StringComparison.Ordinal));
        }
        finally
        {
            DeviceLog.Sink = old;
        }
    }

    [Fact]
    public void Without_a_sink_nothing_happens()
    {
        var old = DeviceLog.Sink;
        DeviceLog.Sink = null;
        try
        {
            var log = new DeviceLog("TestDevice");
            log.Error("dropped");
            Assert.Equal(0, log.SuppressedTotal);
        }
        finally
        {
            DeviceLog.Sink = old;
        }
    }
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class DeviceLogSinkCollection
{
    public const string Name = "DeviceLog.Sink";
}
