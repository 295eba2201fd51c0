using System.Diagnostics;

namespace Flint.Devices.Legacy;

/// <summary>
/// Firecracker's boot-time device at MMIO 0xC0000000 (--boot-timer): when the guest writes the byte 123 to it (the
/// rootfs init does), the VMM logs at Info the wall and process CPU time since the VM build started, in Firecracker's
/// words ("Guest-boot-time = ... us ... ms, ... CPU us ... CPU ms"). Both clocks start at the same moment, as
/// Firecracker's TimestampUs taken at the top of build_microvm_for_boot, so the CPU figure excludes process start-up.
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

    /// <summary>A timer whose wall and CPU clocks both start now (the builder calls it as the build begins).</summary>
    public static BootTimer StartingNow(Action<string> log) =>
        new(Stopwatch.GetTimestamp(), Flint.Sys.ProcessClock.CpuTime(), log);

    public void Read(ulong offset, Span<byte> data) => data.Clear();

    public void Write(ulong offset, ReadOnlySpan<byte> data)
    {
        // Firecracker handles only a one-byte write at offset 0.
        if (offset != 0 || data.Length != 1 || data[0] != MagicValue) return;
        var wall = Stopwatch.GetElapsedTime(_startTimestamp);
        var cpu = Flint.Sys.ProcessClock.CpuTime() - _startCpu;
        BootTime = wall;
        long us = (long)wall.TotalMicroseconds, cpuUs = (long)cpu.TotalMicroseconds;
        _log($"Guest-boot-time = {us,6} us {us / 1000} ms, {cpuUs,6} CPU us {cpuUs / 1000} CPU ms");
    }
}
