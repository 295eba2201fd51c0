using System.Text.Json;

namespace Flint.Vmm.Metrics;

/// <summary>
/// Firecracker-format metrics: one JSON object per flush, `utc_timestamp_ms` first, then every group, always
/// present. Counters report the change since the previous flush; gauges (startup times) report their value.
/// Sources are read through delegates so devices keep plain long fields on their hot paths.
/// </summary>
public sealed class MetricsRegistry
{
    private sealed class Metric(string name, Func<long> read, bool isGauge)
    {
        public readonly string Name = name;
        public readonly Func<long> Read = read;
        public readonly bool IsGauge = isGauge;
        public long Last;
    }

    private readonly object _lock = new();
    private readonly List<(string Group, List<Metric> Metrics)> _groups = [];

    /// <summary>Firecracker's groups and the counters each always carries, in its order.</summary>
    public static readonly (string Group, string[] Counters)[] FirecrackerGroups =
    [
        ("api_server", ["process_startup_time_us", "process_startup_time_cpu_us"]),
        ("balloon", ["activate_fails", "inflate_count", "stats_updates_count", "stats_update_fails", "deflate_count", "event_fails"]),
        ("block", ["activate_fails", "cfg_fails", "no_avail_buffer", "event_fails", "execute_fails", "invalid_reqs_count", "flush_count",
            "queue_event_count", "rate_limiter_event_count", "update_count", "update_fails", "read_bytes", "write_bytes", "read_count",
            "write_count", "rate_limiter_throttled_events", "io_engine_throttled_events"]),
        ("deprecated_api", ["deprecated_http_api_calls", "deprecated_cmd_line_api_calls"]),
        ("entropy", ["activate_fails", "entropy_event_fails", "entropy_event_count", "entropy_bytes", "host_rng_fails",
            "entropy_rate_limiter_throttled", "rate_limiter_event_count"]),
        ("get_api_requests", ["instance_info_count", "machine_cfg_count", "mmds_count", "vmm_version_count"]),
        ("i8042", ["error_count", "missed_read_count", "missed_write_count", "read_count", "reset_count", "write_count"]),
        ("latencies_us", ["full_create_snapshot", "diff_create_snapshot", "load_snapshot", "pause_vm", "resume_vm", "vmm_full_create_snapshot",
            "vmm_diff_create_snapshot", "vmm_load_snapshot", "vmm_pause_vm", "vmm_resume_vm"]),
        ("logger", ["missed_metrics_count", "metrics_fails", "missed_log_count", "log_fails"]),
        ("mmds", ["rx_accepted", "rx_accepted_err", "rx_accepted_unusual", "rx_bad_eth", "rx_count", "tx_bytes", "tx_count", "tx_errors",
            "tx_frames", "connections_created", "connections_destroyed"]),
        ("net", ["activate_fails", "cfg_fails", "mac_address_updates", "no_rx_avail_buffer", "no_tx_avail_buffer", "event_fails",
            "rx_queue_event_count", "rx_event_rate_limiter_count", "rx_partial_writes", "rx_rate_limiter_throttled", "rx_tap_event_count",
            "rx_bytes_count", "rx_packets_count", "rx_fails", "rx_count", "tap_read_fails", "tap_write_fails", "tx_bytes_count",
            "tx_malformed_frames", "tx_fails", "tx_count", "tx_packets_count", "tx_partial_reads", "tx_queue_event_count",
            "tx_rate_limiter_event_count", "tx_rate_limiter_throttled", "tx_spoofed_mac_count"]),
        ("patch_api_requests", ["drive_count", "drive_fails", "network_count", "network_fails", "machine_cfg_count", "machine_cfg_fails",
            "mmds_count", "mmds_fails"]),
        ("put_api_requests", ["actions_count", "actions_fails", "boot_source_count", "boot_source_fails", "drive_count", "drive_fails",
            "logger_count", "logger_fails", "machine_cfg_count", "machine_cfg_fails", "cpu_cfg_count", "cpu_cfg_fails", "metrics_count",
            "metrics_fails", "network_count", "network_fails", "mmds_count", "mmds_fails", "vsock_count", "vsock_fails"]),
        ("seccomp", ["num_faults"]),
        ("vcpu", ["exit_io_in", "exit_io_out", "exit_mmio_read", "exit_mmio_write", "failures"]),
        ("vmm", ["device_events", "panic_count"]),
        ("uart", ["error_count", "flush_count", "missed_read_count", "missed_write_count", "read_count", "write_count"]),
        ("signals", ["sigbus", "sigsegv", "sigxfsz", "sigxcpu", "sigpipe", "sighup", "sigill"]),
        ("vsock", ["activate_fails", "cfg_fails", "rx_queue_event_fails", "tx_queue_event_fails", "ev_queue_event_fails",
            "muxer_event_fails", "conn_event_fails", "rx_queue_event_count", "tx_queue_event_count", "rx_bytes_count", "tx_bytes_count",
            "rx_packets_count", "tx_packets_count", "conns_added", "conns_killed", "conns_removed", "killq_resync", "tx_flush_fails",
            "tx_write_fails", "rx_read_fails"]),
    ];

    private static readonly HashSet<string> Gauges = ["process_startup_time_us", "process_startup_time_cpu_us"];

    public MetricsRegistry()
    {
        // Every group and counter exists from the start, reading 0 until a source is bound.
        foreach (var (g, names) in FirecrackerGroups)
            _groups.Add((g, names.Select(n => new Metric(n, static () => 0, Gauges.Contains(n))).ToList()));
        // The logger is process-wide: its dropped lines count from the start.
        Bind("logger", "missed_log_count", static () => Interlocked.Read(ref Flint.Vmm.Logging.Logger.MissedLogCount));
        Bind("logger", "log_fails", static () => Interlocked.Read(ref Flint.Vmm.Logging.Logger.LogFails));
    }

    /// <summary>Binds (or rebinds) a counter to its source; unknown groups or names are added.</summary>
    public void Bind(string group, string name, Func<long> read)
    {
        lock (_lock)
        {
            int gi = _groups.FindIndex(x => x.Group == group);
            if (gi < 0) { _groups.Add((group, [])); gi = _groups.Count - 1; }
            var list = _groups[gi].Metrics;
            int mi = list.FindIndex(m => m.Name == name);
            var metric = new Metric(name, read, Gauges.Contains(name));
            if (mi < 0) list.Add(metric); else list[mi] = metric;
        }
    }

    /// <summary>Serialises one line (no trailing newline) and advances the delta baselines.</summary>
    public byte[] Snapshot(DateTimeOffset now)
    {
        lock (_lock)
        {
            var buf = new MemoryStream(4096);
            using (var w = new Utf8JsonWriter(buf))
            {
                w.WriteStartObject();
                w.WriteNumber("utc_timestamp_ms", now.ToUnixTimeMilliseconds());
                foreach (var (group, metrics) in _groups)
                {
                    w.WriteStartObject(group);
                    foreach (var m in metrics)
                    {
                        long v = m.Read();
                        w.WriteNumber(m.Name, m.IsGauge ? v : v - m.Last);
                        m.Last = v;
                    }
                    w.WriteEndObject();
                }
                w.WriteEndObject();
            }
            return buf.ToArray();
        }
    }
}
