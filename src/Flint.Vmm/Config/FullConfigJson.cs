using System.Text.Json;
using Flint.Vmm.Rpc;

namespace Flint.Vmm.Config;

/// <summary>
/// GET /vm/config as Firecracker writes it (its VmmConfig serialised from VmResources, resources.rs): every section
/// present, each field in Firecracker's order with its default or null filled in, and "logger", "metrics" and
/// "cpu-config" always null (Firecracker does not report them). Saved as a file, the answer starts the same VM with
/// --config-file (Firecracker's test_config_start_with_api).
/// </summary>
public static class FullConfigJson
{
    public static string Write(VmConfig c) => JsonText.Serialize(w =>
    {
        w.WriteStartObject();
        w.WritePropertyName("balloon");
        if (ConfigLoader.Present(c.Balloon) is { } b)
        {
            w.WriteStartObject();
            w.WriteNumber("amount_mib", UInt(b, "amount_mib") ?? 0);
            w.WriteBoolean("deflate_on_oom", Bool(b, "deflate_on_oom") ?? false);
            w.WriteNumber("stats_polling_interval_s", UInt(b, "stats_polling_interval_s") ?? 0);
            w.WriteBoolean("free_page_hinting", Bool(b, "free_page_hinting") ?? false);
            w.WriteBoolean("free_page_reporting", Bool(b, "free_page_reporting") ?? false);
            w.WriteEndObject();
        }
        else w.WriteNullValue();

        w.WriteStartArray("drives");
        foreach (var d in c.Drives)
        {
            w.WriteStartObject();
            w.WriteString("drive_id", d.DriveId);
            StringOrNull(w, "partuuid", d.PartUuid);
            w.WriteBoolean("is_root_device", d.IsRootDevice);
            w.WriteString("cache_type", d.CacheType ?? "Unsafe");
            // A vhost-user drive (Firecracker's From<VhostUserBlockConfig>) has no read-only flag or engine of its own.
            bool vhostUser = d.Socket != null;
            if (vhostUser) w.WriteNull("is_read_only");
            else w.WriteBoolean("is_read_only", d.IsReadOnly ?? false);
            StringOrNull(w, "path_on_host", d.PathOnHost);
            RateLimiter(w, "rate_limiter", d.RateLimiter);
            if (vhostUser) w.WriteNull("io_engine");
            else w.WriteString("io_engine", d.IoEngine ?? "Sync");
            StringOrNull(w, "socket", d.Socket);
            w.WriteEndObject();
        }
        w.WriteEndArray();

        w.WriteStartObject("boot-source");
        w.WriteString("kernel_image_path", c.BootSource?.KernelImagePath ?? "");
        StringOrNull(w, "initrd_path", c.BootSource?.InitrdPath);
        StringOrNull(w, "boot_args", c.BootSource?.BootArgs);
        w.WriteEndObject();

        w.WriteNull("cpu-config");
        w.WriteNull("logger");

        var m = c.MachineConfig ?? new MachineConfig();
        w.WriteStartObject("machine-config");
        w.WriteNumber("vcpu_count", m.VcpuCount);
        w.WriteNumber("mem_size_mib", m.MemSizeMib);
        w.WriteBoolean("smt", m.Smt);
        // Firecracker leaves cpu_template out unless a static template is set.
        if (m.CpuTemplate is { } t && t != "None") w.WriteString("cpu_template", t);
        w.WriteBoolean("track_dirty_pages", m.TrackDirtyPages);
        w.WriteString("huge_pages", m.HugePages ?? "None");
        w.WriteEndObject();

        w.WriteNull("metrics");

        w.WritePropertyName("mmds-config");
        if (ConfigLoader.Present(c.MmdsConfig) is { } mmds)
        {
            w.WriteStartObject();
            w.WriteString("version", Str(mmds, "version") ?? "V1");
            w.WriteStartArray("network_interfaces");
            if (mmds.TryGetProperty("network_interfaces", out var ifaces) && ifaces.ValueKind == JsonValueKind.Array)
                foreach (var i in ifaces.EnumerateArray()) if (i.ValueKind == JsonValueKind.String) w.WriteStringValue(i.GetString());
            w.WriteEndArray();
            // Firecracker reads the address back from the network stack, which always has one.
            w.WriteString("ipv4_address", Str(mmds, "ipv4_address") ?? Flint.Devices.Mmds.MmdsNetworkStack.DefaultIpv4);
            w.WriteBoolean("imds_compat", Bool(mmds, "imds_compat") ?? false);
            w.WriteEndObject();
        }
        else w.WriteNullValue();

        w.WriteStartArray("network-interfaces");
        foreach (var n in c.NetworkInterfaces ?? [])
        {
            w.WriteStartObject();
            w.WriteString("iface_id", Str(n, "iface_id") ?? "");
            w.WriteString("host_dev_name", Str(n, "host_dev_name") ?? "");
            StringOrNull(w, "guest_mac", Str(n, "guest_mac")?.ToLowerInvariant());
            w.WritePropertyName("mtu");
            if (UInt(n, "mtu") is { } mtu) w.WriteNumberValue(mtu); else w.WriteNullValue();
            RateLimiter(w, "rx_rate_limiter", Prop(n, "rx_rate_limiter"));
            RateLimiter(w, "tx_rate_limiter", Prop(n, "tx_rate_limiter"));
            w.WriteEndObject();
        }
        w.WriteEndArray();

        w.WritePropertyName("vsock");
        if (ConfigLoader.Present(c.Vsock) is { } v)
        {
            // Firecracker's From<&VsockAndUnixPath> drops vsock_id (skip_serializing_if None).
            w.WriteStartObject();
            w.WriteNumber("guest_cid", UInt(v, "guest_cid") ?? 0);
            w.WriteString("uds_path", Str(v, "uds_path") ?? "");
            w.WriteEndObject();
        }
        else w.WriteNullValue();

        w.WritePropertyName("entropy");
        if (ConfigLoader.Present(c.Entropy) is { } e)
        {
            w.WriteStartObject();
            RateLimiter(w, "rate_limiter", Prop(e, "rate_limiter"));
            w.WriteEndObject();
        }
        else w.WriteNullValue();

        // PmemConfig serialised (no skip_serializing_if): every field, rate_limiter null when unset.
        w.WriteStartArray("pmem");
        foreach (var p in c.Pmem)
        {
            w.WriteStartObject();
            w.WriteString("id", p.Id);
            w.WriteString("path_on_host", p.PathOnHost);
            w.WriteBoolean("root_device", p.RootDevice);
            w.WriteBoolean("read_only", p.ReadOnly);
            RateLimiter(w, "rate_limiter", p.RateLimiter);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WritePropertyName("memory-hotplug");
        if (c.MemoryHotplug is { } hp)
        {
            w.WriteStartObject();
            w.WriteNumber("total_size_mib", hp.TotalSizeMib);
            w.WriteNumber("block_size_mib", hp.BlockSizeMib);
            w.WriteNumber("slot_size_mib", hp.SlotSizeMib);
            w.WriteEndObject();
        }
        else w.WriteNullValue();
        w.WriteEndObject();
    });

    /// <summary>RateLimiterConfig: {"bandwidth": bucket|null, "ops": bucket|null}; null when neither bucket is set.</summary>
    private static void RateLimiter(Utf8JsonWriter w, string name, JsonElement? rl)
    {
        w.WritePropertyName(name);
        var bw = ConfigLoader.Present(rl) is { ValueKind: JsonValueKind.Object } o ? ConfigLoader.Present(Prop(o, "bandwidth")) : null;
        var ops = ConfigLoader.Present(rl) is { ValueKind: JsonValueKind.Object } o2 ? ConfigLoader.Present(Prop(o2, "ops")) : null;
        if (bw == null && ops == null) { w.WriteNullValue(); return; }
        w.WriteStartObject();
        Bucket(w, "bandwidth", bw);
        Bucket(w, "ops", ops);
        w.WriteEndObject();
    }

    private static void Bucket(Utf8JsonWriter w, string name, JsonElement? b)
    {
        w.WritePropertyName(name);
        if (b is not { ValueKind: JsonValueKind.Object } tb) { w.WriteNullValue(); return; }
        w.WriteStartObject();
        w.WriteNumber("size", UInt(tb, "size") ?? 0);
        w.WritePropertyName("one_time_burst");
        if (UInt(tb, "one_time_burst") is { } otb) w.WriteNumberValue(otb); else w.WriteNullValue();
        w.WriteNumber("refill_time", UInt(tb, "refill_time") ?? 0);
        w.WriteEndObject();
    }

    private static void StringOrNull(Utf8JsonWriter w, string name, string? value)
    {
        if (value != null) w.WriteString(name, value); else w.WriteNull(name);
    }

    private static JsonElement? Prop(JsonElement o, string name) =>
        o.ValueKind == JsonValueKind.Object && o.TryGetProperty(name, out var v) ? v : null;

    private static string? Str(JsonElement o, string name) => Prop(o, name) is { ValueKind: JsonValueKind.String } v ? v.GetString() : null;

    private static bool? Bool(JsonElement o, string name) => Prop(o, name) is { ValueKind: JsonValueKind.True or JsonValueKind.False } v ? v.GetBoolean() : null;

    private static ulong? UInt(JsonElement o, string name) => Prop(o, name) is { ValueKind: JsonValueKind.Number } v && v.TryGetUInt64(out ulong u) ? u : null;
}
