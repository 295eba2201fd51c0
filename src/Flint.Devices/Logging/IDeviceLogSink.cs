namespace Flint.Devices.Logging;

/// <summary>
/// Where device log lines go. Flint.Devices has no logger of its own (it must not depend on Flint.Vmm); the VMM binds
/// its process logger here once at startup (<see cref="DeviceLog.Sink"/>). Called from the event loop and vCPU
/// threads: implementations must be thread-safe and must not throw.
/// </summary>
public interface IDeviceLogSink
{
    void Write(DeviceLogLevel level, string device, string message);
}

public enum DeviceLogLevel { Error, Warning }
