using Flint.Sys;

namespace Flint.Vmm.Builder;

/// <summary>Where the serial console's output goes: the process's stdout.</summary>
public static class ConsoleOutput
{
    /// <summary>
    /// The stream the serial device writes the guest's console to. It is written from vCPU threads, so it is plain
    /// write(2) on fd 1 (<see cref="FdWriteStream"/>), not .NET's console stream, whose first write initialises the
    /// terminal with an ioctl the vcpu filter refuses.
    /// </summary>
    public static Stream OpenStdout() => new FdWriteStream(1);
}
