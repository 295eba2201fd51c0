using System.Text.Json;
using Flint.Devices.Mmds;
using Flint.Devices.RateLimiting;

namespace Flint.Vmm.Config;

// Typed views of the device sections, read from the JSON the API and the config file keep. Parsing here is the
// one place their fields are checked for the builder: a bad value is a ConfigException (exit 152 / HTTP 400).

public sealed record NetConfig(string IfaceId, string HostDevName, byte[]? GuestMac, RateLimiterConfig Rx, RateLimiterConfig Tx);
public sealed record MmdsSettings(MmdsVersion Version, IReadOnlyList<string> Interfaces, string Ipv4Address);
public sealed record VsockSettings(ulong GuestCid, string UdsPath);
public sealed record BalloonSettings(uint AmountMib, bool DeflateOnOom, uint StatsPollingIntervalS,
    bool FreePageHinting = false, bool FreePageReporting = false);

public static class DeviceConfigs
{
    public static NetConfig Net(JsonElement e)
    {
        string id = Str(e, "iface_id", "network interface");
        if (!ConfigLoader.IsValidId(id)) throw new ConfigException($"Invalid iface_id \"{id}\": use 1-64 alphanumerics or '_'.");
        string dev = Str(e, "host_dev_name", $"network interface \"{id}\"");
        if (dev.Length is 0 or > 15) throw new ConfigException($"Network interface \"{id}\": host_dev_name must be 1-15 characters.");
        byte[]? mac = null;
        if (e.TryGetProperty("guest_mac", out var m) && m.ValueKind == JsonValueKind.String)
            mac = ParseMac(m.GetString()!) ?? throw new ConfigException($"Network interface \"{id}\": invalid guest_mac \"{m.GetString()}\".");
        return new NetConfig(id, dev, mac, Limiter(e, "rx_rate_limiter", id), Limiter(e, "tx_rate_limiter", id));
    }

    public static MmdsSettings Mmds(JsonElement e)
    {
        var version = e.TryGetProperty("version", out var v) && v.ValueKind == JsonValueKind.String
            ? v.GetString() switch
            {
                "V1" => MmdsVersion.V1,
                "V2" => MmdsVersion.V2,
                var other => throw new ConfigException($"Invalid MMDS version \"{other}\" (V1 or V2)."),
            }
            : MmdsVersion.V1;
        var ifaces = new List<string>();
        if (e.TryGetProperty("network_interfaces", out var list) && list.ValueKind == JsonValueKind.Array)
            foreach (var i in list.EnumerateArray()) ifaces.Add(i.GetString() ?? "");
        if (ifaces.Count == 0) throw new ConfigException("The list of network interface IDs that allow forwarding MMDS requests is empty.");
        string ip = e.TryGetProperty("ipv4_address", out var a) && a.ValueKind == JsonValueKind.String
            ? a.GetString()! : MmdsNetworkStack.DefaultIpv4;
        return new MmdsSettings(version, ifaces, ip);
    }

    public static VsockSettings Vsock(JsonElement e)
    {
        if (!e.TryGetProperty("guest_cid", out var c) || !c.TryGetUInt64(out ulong cid) || cid < 3 || cid > uint.MaxValue)
            throw new ConfigException("Invalid vsock guest_cid: it must be between 3 and 4294967295.");
        return new VsockSettings(cid, Str(e, "uds_path", "vsock"));
    }

    public static BalloonSettings Balloon(JsonElement e)
    {
        if (!e.TryGetProperty("amount_mib", out var a) || !a.TryGetUInt32(out uint amount))
            throw new ConfigException("Invalid balloon amount_mib.");
        bool oom = e.TryGetProperty("deflate_on_oom", out var d) && d.ValueKind == JsonValueKind.True;
        uint interval = e.TryGetProperty("stats_polling_interval_s", out var s) && s.TryGetUInt32(out uint iv) ? iv : 0;
        bool hinting = e.TryGetProperty("free_page_hinting", out var h) && h.ValueKind == JsonValueKind.True;
        bool reporting = e.TryGetProperty("free_page_reporting", out var r) && r.ValueKind == JsonValueKind.True;
        return new BalloonSettings(amount, oom, interval, hinting, reporting);
    }

    public static RateLimiterConfig Entropy(JsonElement e) => Limiter(e, "rate_limiter", "entropy");

    /// <summary>A rate limiter field (absent or null: no limits).</summary>
    public static RateLimiterConfig Limiter(JsonElement parent, string field, string owner) =>
        parent.ValueKind == JsonValueKind.Object && parent.TryGetProperty(field, out var rl) ? Limiter(rl, $"{owner} {field}") : RateLimiterConfig.None;

    public static RateLimiterConfig Limiter(JsonElement? rl, string what)
    {
        if (rl is not { } e || e.ValueKind == JsonValueKind.Null || e.ValueKind == JsonValueKind.Undefined) return RateLimiterConfig.None;
        try { return RateLimiterJson.Parse(e); }
        catch (RateLimiterConfigException ex) { throw new ConfigException($"Invalid {what}: {ex.Message}"); }
    }

    public static byte[]? ParseMac(string s)
    {
        var parts = s.Split(':');
        if (parts.Length != 6) return null;
        var mac = new byte[6];
        for (int i = 0; i < 6; i++)
            if (parts[i].Length != 2 || !byte.TryParse(parts[i], System.Globalization.NumberStyles.HexNumber, null, out mac[i])) return null;
        return mac;
    }

    private static string Str(JsonElement e, string field, string owner)
    {
        if (e.ValueKind != JsonValueKind.Object || !e.TryGetProperty(field, out var v) || v.ValueKind != JsonValueKind.String)
            throw new ConfigException($"Invalid {owner}: missing field `{field}`.");
        return v.GetString()!;
    }
}
