using System.Text;
using System.Text.Json;

namespace Flint.Vmm.Rpc;

/// <summary>An HTTP answer from the VMM: status code and an optional JSON body (null: no body, as for 204).</summary>
public sealed record ApiResponse(int Status, string? Body)
{
    public static readonly ApiResponse NoContent = new(204, null);

    public static ApiResponse Ok(string json) => new(200, json);

    /// <summary>An error response: <c>{"fault_message": "..."}</c>.</summary>
    public static ApiResponse Fault(string message, int status = 400) => new(status, FaultBody(message));

    public static string FaultBody(string message)
    {
        var sb = new StringBuilder(message.Length + 24);
        sb.Append("{\"fault_message\":");
        JsonText.AppendString(sb, message);
        sb.Append('}');
        return sb.ToString();
    }
}

/// <summary>A request the parser refused: never reaches the VMM.</summary>
public sealed record ApiError(int Status, string Message)
{
    public ApiError(string message) : this(400, message) { }
    public ApiResponse ToResponse() => ApiResponse.Fault(Message, Status);
}

/// <summary>Handles one parsed API request. The API server calls it on its own thread, one request at a time.</summary>
public interface IApiHandler
{
    ApiResponse Handle(VmmAction action);
}

/// <summary>The running microVM as the API controller sees it (implemented by the VMM owner).</summary>
public interface IRunningVm
{
    bool IsPaused { get; }
    void Pause();
    void Resume();
    void SendCtrlAltDel();
    /// <summary>Swaps the backing file of a block device (PATCH /drives/{id} with path_on_host).</summary>
    void PatchDrive(string driveId, string pathOnHost);
    /// <summary>Replaces a drive's rate limiter buckets (PATCH /drives/{id} with rate_limiter).</summary>
    void PatchDriveRateLimiter(string driveId, System.Text.Json.JsonElement rateLimiter);
    /// <summary>
    /// PATCH /drives/{id} with only the id on a vhost-user drive: re-read its config space from the backend and tell the
    /// guest (Firecracker's update_vhost_user_block_config). Throws with Firecracker's inner text on failure.
    /// </summary>
    void RefreshVhostUserDrive(string driveId) => throw new InvalidOperationException(DriveUpdateRules.WrongBackend);
    /// <summary>Replaces an interface's rx and/or tx rate limiter buckets (PATCH /network-interfaces/{id}).</summary>
    void PatchNetwork(string ifaceId, System.Text.Json.JsonElement? rx, System.Text.Json.JsonElement? tx);
    /// <summary>GET /balloon of the running device; throws when there is no balloon.</summary>
    string GetBalloonJson();
    /// <summary>GET /balloon/statistics; throws when there is no balloon or stats are disabled.</summary>
    string GetBalloonStatsJson();
    void PatchBalloon(uint amountMib);
    void PatchBalloonStatsInterval(uint intervalS);
    // Free page hinting. Defaults for VMs without a balloon device (test doubles): the device is not there.
    /// <summary>PATCH /balloon/hinting/start.</summary>
    void StartBalloonHinting(bool acknowledgeOnStop) => throw new InvalidOperationException(NoBalloon);
    /// <summary>GET /balloon/hinting/status as JSON.</summary>
    string GetBalloonHintingStatusJson() => throw new InvalidOperationException(NoBalloon);
    /// <summary>PATCH /balloon/hinting/stop.</summary>
    void StopBalloonHinting() => throw new InvalidOperationException(NoBalloon);

    /// <summary>Replaces a pmem device's rate limiter buckets (PATCH /pmem/{id}). Default (test doubles): no such device.</summary>
    void PatchPmemRateLimiter(string id, System.Text.Json.JsonElement rateLimiter) => throw new InvalidOperationException(PmemNotFound);
    /// <summary>Firecracker's VmmError::FindDeviceError(DeviceNotFound) text.</summary>
    internal const string PmemNotFound = "Failed perform action on device: Device not found";
    // Memory hotplug. Defaults for VMs without a virtio-mem device (test doubles): the device is not there.
    /// <summary>PATCH /hotplug/memory.</summary>
    void PatchMemoryHotplug(uint requestedSizeMib) => throw new InvalidOperationException(NoMemoryDevice);
    /// <summary>GET /hotplug/memory as JSON.</summary>
    string GetMemoryHotplugJson() => throw new InvalidOperationException(NoMemoryDevice);

    // PCI device hotplug (docs/pci.md). Defaults (test doubles, a VM without --enable-pci): PCI is not enabled.
    /// <summary>Whether the VM has a PCI segment (--enable-pci): only then can devices be hot-plugged.</summary>
    bool PciEnabled => false;
    /// <summary>PUT /drives/{id} after the start: a new virtio-blk on the PCI segment.</summary>
    void HotplugDrive(Config.DriveConfig drive) => throw new Hotplug.HotplugException(Hotplug.HotplugException.PciNotEnabled);
    /// <summary>PUT /network-interfaces/{id} after the start, on the tap the API opened (the VM owns it from here).</summary>
    void HotplugNet(Config.NetConfig net, Flint.Devices.Virtio.Net.Tap tap) => throw new Hotplug.HotplugException(Hotplug.HotplugException.PciNotEnabled);
    /// <summary>PUT /pmem/{id} after the start.</summary>
    void HotplugPmem(Config.PmemConfig pmem) => throw new Hotplug.HotplugException(Hotplug.HotplugException.PciNotEnabled);
    /// <summary>DELETE /drives|network-interfaces|pmem/{id}: takes the device off the PCI segment and closes it.</summary>
    void HotUnplug(Hotplug.HotplugDeviceKind kind, string id) => throw new Hotplug.HotplugException(Hotplug.HotplugException.PciNotEnabled);

    private const string NoBalloon = "No balloon device found.";
    private const string NoMemoryDevice = "Device not found";
}

internal static class JsonText
{
    /// <summary>Appends <paramref name="s"/> as a JSON string literal (quotes included).</summary>
    public static void AppendString(StringBuilder sb, string s)
    {
        sb.Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (c < 0x20 || c is '\u2028' or '\u2029')
                        sb.Append("\\u").Append(((int)c).ToString("x4"));
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }

    public static string Quote(string s)
    {
        var sb = new StringBuilder(s.Length + 2);
        AppendString(sb, s);
        return sb.ToString();
    }

    public static string Serialize(Action<Utf8JsonWriter> write)
    {
        var buf = new System.Buffers.ArrayBufferWriter<byte>(256);
        using (var w = new Utf8JsonWriter(buf)) write(w);
        return Encoding.UTF8.GetString(buf.WrittenSpan);
    }
}
