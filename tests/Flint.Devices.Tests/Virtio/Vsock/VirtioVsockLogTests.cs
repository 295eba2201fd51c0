using Flint.Devices.Logging;
using Flint.Devices.Virtio;
using Flint.Devices.Virtio.Vsock;
using Flint.Memory;
using Flint.Sys;
using static Flint.Devices.Virtio.Vsock.VsockConstants;

namespace Flint.Devices.Tests.Virtio.Vsock;

/// <summary>
/// vsock failures reach the VMM log through the shared <see cref="DeviceLog"/> (the sink the VMM binds at start-up),
/// named after the device and rate limited like every other device's. These swap the process-wide sink, so they run
/// in its collection, alone.
/// </summary>
[Collection(DeviceLogSinkCollection.Name)]
public sealed class VirtioVsockLogTests
{
    private sealed class ListSink : IDeviceLogSink
    {
        public readonly List<(string Device, string Message)> Lines = [];
        public void Write(DeviceLogLevel level, string device, string message)
        {
            lock (Lines) Lines.Add((device, message));
        }
    }

    private static void WithSink(Action<ListSink> test)
    {
        var sink = new ListSink();
        var old = DeviceLog.Sink;
        DeviceLog.Sink = sink;
        try { test(sink); }
        finally { DeviceLog.Sink = old; }
    }

    [Fact]
    public void Device_failures_are_counted_and_logged_at_a_bounded_rate() => WithSink(sink =>
    {
        using var dev = new VirtioVsock(3, new RecordingBackend());
        for (int i = 0; i < 3 * DeviceLog.Burst; i++) dev.WriteConfig(0, new byte[8]); // the guest hammers read-only config
        Assert.Equal(3 * DeviceLog.Burst, dev.Metrics.CfgFails); // every failure counted
        var lines = sink.Lines.Where(l => l.Device == nameof(VirtioVsock)).ToList();
        Assert.Equal(DeviceLog.Burst, lines.Count); // but the log is not the guest's to flood
        Assert.All(lines, l => Assert.Contains("read-only config", l.Message));
        Assert.True(dev.Log.SuppressedTotal >= 2 * DeviceLog.Burst);
    });

    [Fact]
    public unsafe void Connection_failures_reach_the_device_log() => WithSink(sink =>
    {
        using var mem = GuestMemory.Create([(0UL, 0x10000UL)]);
        var log = new DeviceLog(nameof(VirtioVsock));
        var host = new FakeHostStream { SendError = 32 }; // EPIPE: the host end is gone
        var req = new VsockHeader(3, HostCid, 7000, 5000, 0, TypeStream, OpRequest, 0, 65536, 0);
        var c = VsockConnection.ConnectedForGuest(host, 5000, 7000, req, 3, new VsockMetrics(), log);
        var seg = GC.AllocateArray<IoVec>(1, pinned: true);
        seg[0] = new IoVec { Base = mem.TryGetHostPointer(0, 0x1000), Len = 0x1000 };
        // SAFETY: seg is pinned and lives through the block; its one segment is 4 KiB of mapped guest RAM.
        fixed (IoVec* p = seg)
        {
            Assert.Equal(HeaderSize, c.FillRx(new ChainWriter(p, 1, 0x1000), out _)); // the RESPONSE: established
            var rw = new VsockHeader(3, HostCid, 7000, 5000, 5, TypeStream, OpRw, 0, 65536, 0);
            Assert.Equal(VsockConnOutcome.Reset, c.OnGuestPacket(rw, new ChainReader(p, 1, 5)));
        }
        Assert.Contains((nameof(VirtioVsock), "vsock: writing guest data to the host socket failed"), sink.Lines);
    });
}
