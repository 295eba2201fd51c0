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

    [Fact]
    public void Boot_timer_counts_cpu_time_from_the_start_it_was_given_not_from_process_start()
    {
        // Firecracker's "CPU us" is the process CPU time since the boot request (TimestampUs at build start).
        var lines = new List<string>();
        var cpuAtStart = Flint.Sys.ProcessClock.CpuTime();
        var t = new BootTimer(Stopwatch.GetTimestamp(), cpuAtStart, lines.Add);
        t.Write(0, [123]);
        var m = System.Text.RegularExpressions.Regex.Match(lines.Single(),
            @"^Guest-boot-time = +(\d+) us (\d+) ms, +(\d+) CPU us (\d+) CPU ms$");
        Assert.True(m.Success, lines[0]);
        long cpuUs = long.Parse(m.Groups[3].Value);
        // This test process has used far more than 50 ms of CPU before this point (the test host's start-up alone);
        // counted from the start given, the write itself costs microseconds.
        Assert.True(cpuAtStart > TimeSpan.FromMilliseconds(50), $"process CPU so far: {cpuAtStart}");
        Assert.True(cpuUs < 50_000, $"CPU us {cpuUs} counts from process start, not from the given start");
    }

    [Fact]
    public void Boot_timer_started_now_counts_wall_and_cpu_from_its_creation()
    {
        // The builder creates it at the start of the build, as Firecracker's build_microvm_for_boot takes its
        // TimestampUs (wall and process CPU together); it used to pass CPU zero, i.e. CPU since process start.
        var lines = new List<string>();
        var t = BootTimer.StartingNow(lines.Add);
        t.Write(0, [123]);
        var m = System.Text.RegularExpressions.Regex.Match(lines.Single(), @"(\d+) CPU us");
        Assert.True(Flint.Sys.ProcessClock.CpuTime() > TimeSpan.FromMilliseconds(50));
        Assert.True(long.Parse(m.Groups[1].Value) < 50_000, lines[0]);
    }

    [Fact]
    public void Boot_timer_takes_only_a_one_byte_write_at_offset_zero_as_firecracker()
    {
        var lines = new List<string>();
        var t = new BootTimer(Stopwatch.GetTimestamp(), TimeSpan.Zero, lines.Add);
        t.Write(0, [123, 0, 0, 0]);
        t.Write(1, [123]);
        Assert.Empty(lines);
        t.Write(0, [123]);
        Assert.Single(lines);
    }
}
