using System.Text;
using System.Text.Json;

namespace Flint.Devices.Virtio.Balloon;

/// <summary>GET /balloon: the device's configuration, target size in MiB.</summary>
public sealed record BalloonConfig(uint AmountMib, bool DeflateOnOom, uint StatsPollingIntervalS,
    bool FreePageHinting = false, bool FreePageReporting = false)
{
    public void WriteTo(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        w.WriteNumber("amount_mib", AmountMib);
        w.WriteBoolean("deflate_on_oom", DeflateOnOom);
        w.WriteNumber("stats_polling_interval_s", StatsPollingIntervalS);
        w.WriteBoolean("free_page_hinting", FreePageHinting);
        w.WriteBoolean("free_page_reporting", FreePageReporting);
        w.WriteEndObject();
    }

    public string ToJson() => BalloonJson.Write(WriteTo);
}

/// <summary>
/// GET /balloon/statistics: target and actual size (from config space) and the guest's latest statistics.
/// A statistic the guest never reported is null and left out of the JSON, as in Firecracker.
/// </summary>
public sealed record BalloonStats(
    uint TargetPages, uint ActualPages, uint TargetMib, uint ActualMib,
    ulong? SwapIn, ulong? SwapOut, ulong? MajorFaults, ulong? MinorFaults, ulong? FreeMemory, ulong? TotalMemory,
    ulong? AvailableMemory, ulong? DiskCaches, ulong? HugetlbAllocations, ulong? HugetlbFailures)
{
    /// <summary>The statistic names by tag (0..9), as Firecracker writes them.</summary>
    public static readonly string[] StatNames =
    [
        "swap_in", "swap_out", "major_faults", "minor_faults", "free_memory", "total_memory",
        "available_memory", "disk_caches", "hugetlb_allocations", "hugetlb_failures",
    ];

    public ulong? ByTag(int tag) => tag switch
    {
        0 => SwapIn,
        1 => SwapOut,
        2 => MajorFaults,
        3 => MinorFaults,
        4 => FreeMemory,
        5 => TotalMemory,
        6 => AvailableMemory,
        7 => DiskCaches,
        8 => HugetlbAllocations,
        9 => HugetlbFailures,
        _ => null,
    };

    public void WriteTo(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        w.WriteNumber("target_pages", TargetPages);
        w.WriteNumber("actual_pages", ActualPages);
        w.WriteNumber("target_mib", TargetMib);
        w.WriteNumber("actual_mib", ActualMib);
        for (int t = 0; t < StatNames.Length; t++)
            if (ByTag(t) is { } v) w.WriteNumber(StatNames[t], v);
        w.WriteEndObject();
    }

    public string ToJson() => BalloonJson.Write(WriteTo);
}

/// <summary>
/// GET /balloon/hinting/status: the last command the host gave (0 stop, 1 done, 2 and up a run) and the last the
/// guest sent back, null until it sent one (Firecracker's HintingStatus, guest_cmd serialised as null).
/// </summary>
public sealed record BalloonHintingStatus(uint HostCmd, uint? GuestCmd)
{
    public void WriteTo(Utf8JsonWriter w)
    {
        w.WriteStartObject();
        w.WriteNumber("host_cmd", HostCmd);
        if (GuestCmd is { } g) w.WriteNumber("guest_cmd", g); else w.WriteNull("guest_cmd");
        w.WriteEndObject();
    }

    public string ToJson() => BalloonJson.Write(WriteTo);
}

internal static class BalloonJson
{
    public static string Write(Action<Utf8JsonWriter> body)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms)) body(w);
        return Encoding.UTF8.GetString(ms.GetBuffer(), 0, (int)ms.Length);
    }
}
