using System.Diagnostics;

namespace Flint.Devices.Legacy;

/// <summary>
/// Firecracker's boot-time device at MMIO 0xC0000000: when the guest writes 123 to it (the rootfs init does),
/// the VMM logs the wall and CPU time since InstanceStart.
/// </summary>
public sealed class BootTimer : IBusDevice
{
    public const ulong Address = 0xC000_0000;
    public const ulong Length = 0x1000;
    public const byte MagicValue = 123;

    private readonly long _startTimestamp;
    private readonly TimeSpan _startCpu;
    private readonly Action<string> _log;

    /// <summary>The guest-reported boot time once the magic value was written.</summary>
    public TimeSpan? BootTime { get; private set; }

    public BootTimer(long startTimestamp, TimeSpan startCpu, Action<string> log)
    {
        _startTimestamp = startTimestamp;
        _startCpu = startCpu;
        _log = log;
    }

    public void Read(ulong offset, Span<byte> data) => data.Clear();

    public void Write(ulong offset, ReadOnlySpan<byte> data)
    {
        if (offset != 0 || data.Length == 0 || data[0] != MagicValue) return;
        var wall = Stopwatch.GetElapsedTime(_startTimestamp);
        var cpu = Flint.Sys.ProcessClock.CpuTime() - _startCpu;
        BootTime = wall;
        long us = (long)wall.TotalMicroseconds, cpuUs = (long)cpu.TotalMicroseconds;
        _log($"Guest-boot-time = {us,6} us {us / 1000} ms, {cpuUs,6} CPU us {cpuUs / 1000} CPU ms");
    }
}
