using System.Diagnostics;
using Flint.Devices.Legacy;

namespace Flint.Devices.Tests.Legacy;

public class BusAndBootTimerTests
{
    private sealed class Recorder : IBusDevice
    {
        public ulong LastOffset; public byte LastValue;
        public void Read(ulong offset, Span<byte> data) { LastOffset = offset; data.Fill(0x42); }
        public void Write(ulong offset, ReadOnlySpan<byte> data) { LastOffset = offset; LastValue = data[0]; }
    }

    [Fact]
    public void Bus_dispatches_by_range_with_relative_offsets()
    {
        var bus = new Bus();
        var a = new Recorder();
        var b = new Recorder();
        bus.Insert(a, 0x3f8, 8);
        bus.Insert(b, 0x60, 5);
        Assert.True(bus.Write(0x3fd, [7]));
        Assert.Equal(5ul, a.LastOffset);
        Assert.Equal(7, a.LastValue);
        Span<byte> buf = stackalloc byte[1];
        Assert.True(bus.Read(0x64, buf));
        Assert.Equal(4ul, b.LastOffset);
        Assert.False(bus.Read(0x400, buf));
        Assert.Equal(0xff, buf[0]);
        Assert.False(bus.Write(0x3f7, [1]));
    }

    [Fact]
    public void Bus_refuses_overlaps()
    {
        var bus = new Bus();
        bus.Insert(new Recorder(), 0x100, 0x10);
        Assert.Throws<ArgumentException>(() => bus.Insert(new Recorder(), 0x10f, 1));
        Assert.Throws<ArgumentException>(() => bus.Insert(new Recorder(), 0xf0, 0x11));
        bus.Insert(new Recorder(), 0x110, 1);
    }

    [Fact]
    public void Boot_timer_logs_once_the_magic_value_is_written()
    {
        var lines = new List<string>();
        var t = new BootTimer(Stopwatch.GetTimestamp(), Process.GetCurrentProcess().TotalProcessorTime, lines.Add);
        t.Write(0, [1]);
        Assert.Empty(lines);
        t.Write(0, [123]);
        Assert.Single(lines);
        Assert.StartsWith("Guest-boot-time = ", lines[0]);
        Assert.NotNull(t.BootTime);
    }
}
