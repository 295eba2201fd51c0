using Flint.Snapshot;

namespace Flint.Devices.Virtio;

/// <summary>
/// A virtio device's runtime section in a snapshot: its config generation (Firecracker's MmioTransportState keeps it:
/// a driver compares it with one read before), then what the device itself keeps (<see cref="IDeviceRuntimeState"/>).
/// </summary>
public static class DeviceRuntimeSnapshot
{
    public static void SaveRuntime(this IVirtioDevice device, StateWriter w)
    {
        w.U32(device is VirtioDevice d ? d.ConfigGeneration : 0);
        (device as IDeviceRuntimeState)?.SaveRuntimeState(w);
    }

    /// <summary>After the transport's restore. The generation first: a device's own restore may move it on.</summary>
    public static void RestoreRuntime(this IVirtioDevice device, StateReader r)
    {
        uint generation = r.U32();
        (device as VirtioDevice)?.RestoreConfigGeneration(generation);
        (device as IDeviceRuntimeState)?.RestoreRuntimeState(r);
        r.ExpectEnd();
    }
}
