using System.Buffers.Binary;

namespace Flint.Devices.Virtio.Pci;

/// <summary>
/// The common configuration structure (spec 4.1.4.3), decoded onto <see cref="VirtioTransportCore"/>. Each field is
/// accessed at its own width (the 64-bit queue addresses also as two dwords); an access of any other width or at an
/// offset inside a field reads as zero and writes nothing.
/// </summary>
public sealed partial class VirtioPciTransport
{
    private const ulong DeviceFeatureSelect = 0x00, DeviceFeature = 0x04, DriverFeatureSelect = 0x08, DriverFeature = 0x0c,
        MsixConfig = 0x10, NumQueues = 0x12, DeviceStatusField = 0x14, ConfigGeneration = 0x15, QueueSelect = 0x16,
        QueueSize = 0x18, QueueMsixVector = 0x1a, QueueEnable = 0x1c, QueueNotifyOff = 0x1e,
        QueueDesc = 0x20, QueueDriver = 0x28, QueueDevice = 0x30;

    /// <summary>The width of the field at <paramref name="offset"/> (0: not a field start).</summary>
    private static int FieldWidth(ulong offset) => offset switch
    {
        DeviceFeatureSelect or DeviceFeature or DriverFeatureSelect or DriverFeature => 4,
        MsixConfig or NumQueues or QueueSelect or QueueSize or QueueMsixVector or QueueEnable or QueueNotifyOff => 2,
        DeviceStatusField or ConfigGeneration => 1,
        QueueDesc or QueueDriver or QueueDevice => 8,
        QueueDesc + 4 or QueueDriver + 4 or QueueDevice + 4 => 4,
        _ => 0,
    };

    private static bool WidthOk(ulong offset, int length)
    {
        int w = FieldWidth(offset);
        return w == length || (w == 8 && length == 4);
    }

    private void ReadCommon(ulong offset, Span<byte> data)
    {
        data.Clear();
        if (!WidthOk(offset, data.Length)) return;
        ulong v;
        lock (_core.Lock) v = ReadCommonLocked(offset);
        for (int i = 0; i < data.Length; i++) data[i] = (byte)(v >> (8 * i));
    }

    private ulong ReadCommonLocked(ulong offset)
    {
        var c = _core;
        var q = c.SelectedQueue;
        return offset switch
        {
            DeviceFeatureSelect => c.DeviceFeaturesSel,
            DeviceFeature => c.DeviceFeatureWord(),
            DriverFeatureSelect => c.DriverFeaturesSel,
            DriverFeature => c.DriverFeatureWord(),
            MsixConfig => _configVector,
            NumQueues => (ulong)c.Queues.Length,
            DeviceStatusField => c.Status,
            ConfigGeneration => Device.ConfigGeneration & 0xff,
            QueueSelect => c.QueueSel,
            // An absent queue reads size 0, which tells the driver it does not exist (spec 4.1.4.3.2).
            QueueSize => q?.Size ?? 0u,
            QueueMsixVector => q != null ? _queueVectors[c.QueueSel] : VirtioPciLayout.NoVector,
            QueueEnable => q is { Ready: true } ? 1u : 0u,
            QueueNotifyOff => q != null ? c.QueueSel : 0u,
            QueueDesc => q?.DescTable ?? 0,
            QueueDesc + 4 => (q?.DescTable ?? 0) >> 32,
            QueueDriver => q?.AvailRing ?? 0,
            QueueDriver + 4 => (q?.AvailRing ?? 0) >> 32,
            QueueDevice => q?.UsedRing ?? 0,
            QueueDevice + 4 => (q?.UsedRing ?? 0) >> 32,
            _ => 0,
        };
    }

    private void WriteCommon(ulong offset, ReadOnlySpan<byte> data)
    {
        if (!WidthOk(offset, data.Length)) return;
        ulong v = data.Length switch
        {
            1 => data[0],
            2 => BinaryPrimitives.ReadUInt16LittleEndian(data),
            4 => BinaryPrimitives.ReadUInt32LittleEndian(data),
            _ => BinaryPrimitives.ReadUInt64LittleEndian(data),
        };
        lock (_core.Lock) WriteCommonLocked(offset, v, data.Length);
    }

    private void WriteCommonLocked(ulong offset, ulong v, int length)
    {
        var c = _core;
        switch (offset)
        {
            case DeviceFeatureSelect: c.DeviceFeaturesSel = (uint)v; break;
            case DriverFeatureSelect: c.DriverFeaturesSel = (uint)v; break;
            case DriverFeature: c.WriteDriverFeatureWord((uint)v); break;
            case MsixConfig: Volatile.Write(ref _configVector, CheckedVector((uint)v)); break;
            case DeviceStatusField:
                if (c.WriteStatus((uint)v)) ResetVectors();
                break;
            case QueueSelect: c.QueueSel = (uint)v; break;
            case QueueSize: c.WriteQueueSize((uint)v); break;
            case QueueMsixVector:
                // Vectors are chosen during queue setup, like the queue's layout (Linux writes it before enabling).
                if (c.ConfigurableQueue() != null) Volatile.Write(ref _queueVectors[c.QueueSel], CheckedVector((uint)v));
                break;
            case QueueEnable:
                // Drivers must not write 0 (spec 4.1.4.3.2); a queue is only disabled by a device reset.
                if ((v & 1) != 0) c.WriteQueueReady(true);
                break;
            case QueueDesc:
            case QueueDesc + 4:
                if (c.ConfigurableQueue() is { } a) a.DescTable = Merge(a.DescTable, offset - QueueDesc, v, length);
                break;
            case QueueDriver:
            case QueueDriver + 4:
                if (c.ConfigurableQueue() is { } b) b.AvailRing = Merge(b.AvailRing, offset - QueueDriver, v, length);
                break;
            case QueueDevice:
            case QueueDevice + 4:
                if (c.ConfigurableQueue() is { } d) d.UsedRing = Merge(d.UsedRing, offset - QueueDevice, v, length);
                break;
                // device_feature, num_queues, config_generation, queue_notify_off are read-only.
        }
    }

    /// <summary>A 64-bit queue address written whole (8 bytes) or as its low or high dword.</summary>
    private static ulong Merge(ulong old, ulong half, ulong v, int length) => length == 8 ? v
        : half == 0 ? MmioTransport.Low(old, (uint)v) : MmioTransport.High(old, (uint)v);

    /// <summary>Device reset: every queue and the config change go back to "no vector" (the driver assigns them again).</summary>
    private void ResetVectors()
    {
        Volatile.Write(ref _configVector, VirtioPciLayout.NoVector);
        for (int i = 0; i < _queueVectors.Length; i++) Volatile.Write(ref _queueVectors[i], VirtioPciLayout.NoVector);
    }
}
