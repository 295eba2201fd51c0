using Flint.Devices.Logging;

namespace Flint.Vmm.Logging;

/// <summary>
/// Binds the devices' rate-limited log (<see cref="DeviceLog"/>) to the process <see cref="Logger"/>. Lines carry
/// the device's name and an origin under src/Flint.Devices, so the logger's module filter (e.g. "Devices/Virtio")
/// selects them like any other device line.
/// </summary>
public sealed class DeviceLogSink : IDeviceLogSink
{
    public static readonly DeviceLogSink Instance = new();

    private DeviceLogSink() { }

    /// <summary>Makes this the devices' log destination (idempotent; done before any device is built).</summary>
    public static void Bind() => DeviceLog.Sink = Instance;

    public void Write(DeviceLogLevel level, string device, string message)
    {
        var l = level == DeviceLogLevel.Error ? LogLevel.Error : LogLevel.Warning;
        if (!Logger.IsEnabled(l)) return;
        Logger.Log(l, $"{device}: {message}", "/src/Flint.Devices/Virtio/" + device, 0);
    }
}
