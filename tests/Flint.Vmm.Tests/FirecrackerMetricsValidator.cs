using System.Text.Json;

namespace Flint.Vmm.Tests;

/// <summary>
/// A port of Firecracker's metrics schema check, tests/host_tools/fcmetrics.py (validate_fc_metrics and
/// FcDeviceMetrics.validate_per_device_metrics), Firecracker main. The key lists are copied from that file, not
/// from Flint's own table (src/Flint.Vmm/Metrics/FirecrackerMetricsSchema.cs), so the two are checked against each
/// other: a group or number Flint lacks, or one Firecracker does not have, is reported. "x_agg" stands for a
/// LatencyAggregateMetrics object {min_us, max_us, sum_us}.
/// </summary>
internal static class FirecrackerMetricsValidator
{
    private static readonly string[] LatencyAgg = ["min_us", "max_us", "sum_us"];

    private static readonly string[] BlockMetrics =
    [
        "activate_fails", "cfg_fails", "no_avail_buffer", "event_fails", "execute_fails", "invalid_reqs_count", "flush_count",
        "queue_event_count", "rate_limiter_event_count", "update_count", "update_fails", "read_bytes", "write_bytes", "read_count",
        "write_count", "rate_limiter_throttled_events", "io_engine_throttled_events", "remaining_reqs_count", "read_agg", "write_agg",
    ];

    private static readonly string[] NetMetrics =
    [
        "activate_fails", "cfg_fails", "no_rx_avail_buffer", "no_tx_avail_buffer", "event_fails", "rx_queue_event_count",
        "rx_event_rate_limiter_count", "rx_rate_limiter_throttled", "rx_tap_event_count", "rx_bytes_count", "rx_packets_count", "rx_fails",
        "rx_count", "tap_read_fails", "tap_write_fails", "tx_bytes_count", "tx_malformed_frames", "tx_fails", "tx_count", "tx_packets_count",
        "tx_queue_event_count", "tx_rate_limiter_event_count", "tx_rate_limiter_throttled", "tx_spoofed_mac_count", "tx_remaining_reqs_count",
        "tap_write_agg",
    ];

    /// <summary>fcmetrics.py's firecracker_metrics (x86_64: no "rtc").</summary>
    public static readonly Dictionary<string, string[]> Groups = new()
    {
        ["api_server"] = ["process_startup_time_us", "process_startup_time_cpu_us"],
        ["balloon"] = ["activate_fails", "inflate_count", "stats_updates_count", "stats_update_fails", "deflate_count", "event_fails",
            "free_page_report_count", "free_page_report_freed", "free_page_report_fails", "free_page_hint_count", "free_page_hint_freed",
            "free_page_hint_fails"],
        ["block"] = BlockMetrics,
        ["deprecated_api"] = ["deprecated_http_api_calls"],
        ["get_api_requests"] = ["instance_info_count", "machine_cfg_count", "mmds_count", "vmm_version_count", "hotplug_memory_count"],
        ["i8042"] = ["error_count", "missed_read_count", "missed_write_count", "read_count", "reset_count", "write_count"],
        ["latencies_us"] = ["full_create_snapshot", "diff_create_snapshot", "load_snapshot", "pause_vm", "resume_vm", "vmm_full_create_snapshot",
            "vmm_diff_create_snapshot", "vmm_load_snapshot", "vmm_pause_vm", "vmm_resume_vm"],
        ["logger"] = ["missed_metrics_count", "metrics_fails", "missed_log_count", "rate_limited_log_count"],
        ["mmds"] = ["rx_accepted", "rx_accepted_err", "rx_accepted_unusual", "rx_bad_eth", "rx_invalid_token", "rx_no_token", "rx_count",
            "tx_bytes", "tx_count", "tx_errors", "tx_frames", "connections_created", "connections_destroyed"],
        ["net"] = NetMetrics,
        ["patch_api_requests"] = ["drive_count", "drive_fails", "network_count", "network_fails", "machine_cfg_count", "machine_cfg_fails",
            "mmds_count", "mmds_fails", "hotplug_memory_count", "hotplug_memory_fails", "pmem_count", "pmem_fails"],
        ["put_api_requests"] = ["actions_count", "actions_fails", "boot_source_count", "boot_source_fails", "drive_count", "drive_fails",
            "logger_count", "logger_fails", "machine_cfg_count", "machine_cfg_fails", "cpu_cfg_count", "cpu_cfg_fails", "metrics_count",
            "metrics_fails", "network_count", "network_fails", "mmds_count", "mmds_fails", "vsock_count", "vsock_fails", "pmem_count",
            "pmem_fails", "serial_count", "serial_fails", "hotplug_memory_count", "hotplug_memory_fails"],
        ["seccomp"] = ["num_faults"],
        ["vcpu"] = ["exit_io_in", "exit_io_out", "exit_mmio_read", "exit_mmio_write", "failures", "kvmclock_ctrl_fails", "exit_io_in_agg",
            "exit_io_out_agg", "exit_mmio_read_agg", "exit_mmio_write_agg"],
        ["vmm"] = ["panic_count"],
        ["uart"] = ["error_count", "flush_count", "missed_read_count", "missed_write_count", "read_count", "write_count",
            "rate_limiter_dropped_bytes"],
        ["signals"] = ["sigbus", "sigsegv", "sigxfsz", "sigxcpu", "sigpipe", "sighup", "sigill"],
        ["vsock"] = ["activate_fails", "cfg_fails", "rx_queue_event_fails", "tx_queue_event_fails", "ev_queue_event_fails", "muxer_event_fails",
            "conn_event_fails", "rx_queue_event_count", "tx_queue_event_count", "rx_bytes_count", "tx_bytes_count", "rx_packets_count",
            "tx_packets_count", "conns_added", "conns_killed", "conns_removed", "killq_resync", "tx_flush_fails", "tx_write_fails",
            "rx_read_fails"],
        ["entropy"] = ["activate_fails", "entropy_event_fails", "entropy_event_count", "entropy_bytes", "host_rng_fails",
            "entropy_rate_limiter_throttled", "rate_limiter_event_count"],
        ["interrupts"] = ["triggers", "config_updates"],
        ["pmem"] = ["activate_fails", "cfg_fails", "event_fails", "queue_event_count", "rate_limiter_throttled_events", "rate_limiter_event_count"],
        ["memory_hotplug"] = ["activate_fails", "queue_event_fails", "queue_event_count", "plug_count", "plug_bytes", "plug_fails", "plug_agg",
            "unplug_count", "unplug_bytes", "unplug_fails", "unplug_discard_fails", "unplug_agg", "state_count", "state_fails", "state_agg",
            "unplug_all_count", "unplug_all_fails", "unplug_all_agg"],
    };

    private static readonly string[] VhostUser = ["activate_fails", "cfg_fails", "init_time_us", "activate_time_us", "config_change_time_us"];

    /// <summary>
    /// Every way <paramref name="line"/> differs from Firecracker's schema (jsonschema with additionalProperties false:
    /// every key required, no other key), as "path: problem" lines; empty when it conforms.
    /// </summary>
    public static List<string> Problems(JsonElement line)
    {
        var problems = new List<string>();
        if (line.ValueKind != JsonValueKind.Object) return ["the line is not a JSON object"];
        if (!line.TryGetProperty("utc_timestamp_ms", out var ts) || ts.ValueKind != JsonValueKind.Number)
            problems.Add("utc_timestamp_ms: missing or not a number");
        // fcmetrics.py allows 1 s; 10 s here, for a flush read back on a loaded 2-core CI machine.
        else if (Math.Abs(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() - ts.GetInt64()) >= 10_000)
            problems.Add("utc_timestamp_ms: not a UTC Unix-epoch timestamp of now");
        foreach (var g in Groups.Keys)
            if (!line.TryGetProperty(g, out _)) problems.Add($"{g}: missing");
        foreach (var p in line.EnumerateObject())
        {
            string[]? fields = p.Name switch
            {
                "utc_timestamp_ms" => [],
                "id" => null,
                "properties" => null,
                _ when Groups.TryGetValue(p.Name, out var f) => f,
                _ when p.Name.StartsWith("block_", StringComparison.Ordinal) => BlockMetrics,
                _ when p.Name.StartsWith("net_", StringComparison.Ordinal) => NetMetrics,
                _ when p.Name.StartsWith("vhost_user_", StringComparison.Ordinal) => VhostUser,
                _ => ["<not a Firecracker key>"],
            };
            if (p.Name == "utc_timestamp_ms") continue;
            if (p.Name == "id")
            {
                if (p.Value.ValueKind != JsonValueKind.String) problems.Add("id: not a string");
                continue;
            }
            if (p.Name == "properties")
            {
                if (p.Value.ValueKind != JsonValueKind.Object || p.Value.EnumerateObject().Any(x => x.Value.ValueKind != JsonValueKind.String))
                    problems.Add("properties: not an object of strings");
                continue;
            }
            if (fields is ["<not a Firecracker key>"]) { problems.Add($"{p.Name}: not a Firecracker key"); continue; }
            CheckObject(p.Name, p.Value, fields!, problems);
        }
        return problems;
    }

    private static void CheckObject(string path, JsonElement obj, string[] fields, List<string> problems)
    {
        if (obj.ValueKind != JsonValueKind.Object) { problems.Add($"{path}: not an object"); return; }
        foreach (var f in fields)
        {
            if (!obj.TryGetProperty(f, out var v)) { problems.Add($"{path}.{f}: missing"); continue; }
            if (f.EndsWith("_agg", StringComparison.Ordinal)) CheckObject($"{path}.{f}", v, LatencyAgg, problems);
            else if (v.ValueKind != JsonValueKind.Number) problems.Add($"{path}.{f}: not a number");
        }
        foreach (var p in obj.EnumerateObject())
            if (!fields.Contains(p.Name)) problems.Add($"{path}.{p.Name}: not a Firecracker key");
    }

    /// <summary>Asserts <paramref name="line"/> conforms, listing every problem when it does not.</summary>
    public static void AssertConforms(JsonElement line)
    {
        var problems = Problems(line);
        Assert.True(problems.Count == 0, $"{problems.Count} differences from Firecracker's metrics schema:\n" + string.Join("\n", problems));
    }

    /// <summary>
    /// FcDeviceMetrics.validate_per_device_metrics: exactly <paramref name="count"/> "{dev}_*" objects, and "{dev}" is
    /// their sum (numbers summed; in an _agg object only sum_us is summed, min_us and max_us stay 0).
    /// </summary>
    public static void AssertAggregate(JsonElement line, string dev, int count)
    {
        var perDevice = line.EnumerateObject().Where(p => p.Name.StartsWith(dev + "_", StringComparison.Ordinal)).ToList();
        Assert.Equal(count, perDevice.Count);
        foreach (var field in line.GetProperty(dev).EnumerateObject())
        {
            if (field.Value.ValueKind == JsonValueKind.Object)
            {
                long sum = perDevice.Sum(p => p.Value.GetProperty(field.Name).GetProperty("sum_us").GetInt64());
                Assert.Equal(sum, field.Value.GetProperty("sum_us").GetInt64());
                Assert.Equal(0, field.Value.GetProperty("min_us").GetInt64());
                Assert.Equal(0, field.Value.GetProperty("max_us").GetInt64());
            }
            else
            {
                long sum = perDevice.Sum(p => p.Value.GetProperty(field.Name).GetInt64());
                Assert.True(sum == field.Value.GetInt64(), $"{dev}.{field.Name}: {field.Value.GetInt64()}, the devices sum to {sum}");
            }
        }
    }
}
