namespace Flint.Vmm.Metrics;

/// <summary>How a metric is reported: Firecracker's SharedIncMetric (the change since the previous flush) or
/// SharedStoreMetric (the current value, never reset).</summary>
public enum MetricKind { Inc, Store }

/// <summary>One number of a group. <see cref="Path"/> is dotted for the numbers inside a <c>*_agg</c> object
/// (<c>read_agg.min_us</c>).</summary>
public readonly record struct MetricLeaf(string Path, MetricKind Kind);

/// <summary>
/// One top-level object of the metrics line. A per-device group (<c>block</c>, <c>net</c>, <c>pmem</c>) is preceded
/// by one <c>{name}_{id}</c> object per device, and is itself the sum of their changes (Firecracker's
/// <c>flush_metrics</c> in each device's metrics.rs).
/// </summary>
/// <param name="NoAggregate">A per-device group Firecracker writes no sum object for (vhost_user).</param>
public sealed record MetricGroup(string Name, MetricLeaf[] Leaves, bool PerDevice = false, bool NoAggregate = false);

/// <summary>
/// Every object and number Firecracker writes on x86_64, in its serialisation order: src/vmm/src/logger/metrics.rs
/// (FirecrackerMetrics) and the device metrics files it flattens in, as of Firecracker main (the key list of
/// tests/host_tools/fcmetrics.py, validate_fc_metrics). Flint writes exactly these keys: the numbers of a capability
/// Flint lacks stay 0 (docs/compatibility.md, "Metrics").
/// </summary>
public static class FirecrackerMetricsSchema
{
    private static MetricLeaf I(string n) => new(n, MetricKind.Inc);
    private static MetricLeaf S(string n) => new(n, MetricKind.Store);

    /// <summary>A LatencyAggregateMetrics object: min_us and max_us are stored, sum_us counts.</summary>
    private static MetricLeaf[] Agg(string n) => [S(n + ".min_us"), S(n + ".max_us"), I(n + ".sum_us")];

    private static MetricLeaf[] Incs(params string[] names) => names.Select(I).ToArray();
    private static MetricLeaf[] Stores(params string[] names) => names.Select(S).ToArray();

    /// <summary>block/virtio/metrics.rs, BlockDeviceMetrics.</summary>
    public static readonly MetricLeaf[] Block =
    [
        .. Incs("activate_fails", "cfg_fails", "no_avail_buffer", "event_fails", "execute_fails", "invalid_reqs_count", "flush_count",
            "queue_event_count", "rate_limiter_event_count", "update_count", "update_fails", "read_bytes", "write_bytes", "read_count",
            "write_count"),
        .. Agg("read_agg"), .. Agg("write_agg"),
        .. Incs("rate_limiter_throttled_events", "io_engine_throttled_events", "remaining_reqs_count"),
    ];

    /// <summary>net/metrics.rs, NetDeviceMetrics.</summary>
    public static readonly MetricLeaf[] Net =
    [
        .. Incs("activate_fails", "cfg_fails", "no_rx_avail_buffer", "no_tx_avail_buffer", "event_fails", "rx_queue_event_count",
            "rx_event_rate_limiter_count", "rx_rate_limiter_throttled", "rx_tap_event_count", "rx_bytes_count", "rx_packets_count",
            "rx_fails", "rx_count", "tap_read_fails", "tap_write_fails"),
        .. Agg("tap_write_agg"),
        .. Incs("tx_bytes_count", "tx_malformed_frames", "tx_fails", "tx_count", "tx_packets_count", "tx_queue_event_count",
            "tx_rate_limiter_event_count", "tx_rate_limiter_throttled", "tx_spoofed_mac_count", "tx_remaining_reqs_count"),
    ];

    public static readonly MetricGroup[] Groups =
    [
        new("api_server", Stores("process_startup_time_us", "process_startup_time_cpu_us")),
        new("balloon", Incs("activate_fails", "inflate_count", "stats_updates_count", "stats_update_fails", "deflate_count", "event_fails",
            "free_page_report_count", "free_page_report_freed", "free_page_report_fails", "free_page_hint_count", "free_page_hint_freed",
            "free_page_hint_fails")),
        new("block", Block, PerDevice: true),
        new("deprecated_api", Incs("deprecated_http_api_calls")),
        new("get_api_requests", Incs("instance_info_count", "machine_cfg_count", "mmds_count", "vmm_version_count", "hotplug_memory_count")),
        // legacy/mod.rs flush_metrics: i8042, then uart (rtc only on aarch64).
        new("i8042", Incs("error_count", "missed_read_count", "missed_write_count", "read_count", "reset_count", "write_count")),
        new("uart", Incs("error_count", "flush_count", "missed_read_count", "missed_write_count", "read_count", "write_count",
            "rate_limiter_dropped_bytes")),
        new("latencies_us", Stores("full_create_snapshot", "diff_create_snapshot", "load_snapshot", "pause_vm", "resume_vm",
            "vmm_full_create_snapshot", "vmm_diff_create_snapshot", "vmm_load_snapshot", "vmm_pause_vm", "vmm_resume_vm")),
        new("logger", Incs("missed_metrics_count", "metrics_fails", "missed_log_count", "rate_limited_log_count")),
        new("mmds", Incs("rx_accepted", "rx_accepted_err", "rx_accepted_unusual", "rx_bad_eth", "rx_invalid_token", "rx_no_token", "rx_count",
            "tx_bytes", "tx_count", "tx_errors", "tx_frames", "connections_created", "connections_destroyed")),
        new("net", Net, PerDevice: true),
        new("patch_api_requests", Incs("drive_count", "drive_fails", "network_count", "network_fails", "machine_cfg_count", "machine_cfg_fails",
            "mmds_count", "mmds_fails", "hotplug_memory_count", "hotplug_memory_fails", "pmem_count", "pmem_fails")),
        new("put_api_requests", Incs("actions_count", "actions_fails", "boot_source_count", "boot_source_fails", "drive_count", "drive_fails",
            "logger_count", "logger_fails", "machine_cfg_count", "machine_cfg_fails", "cpu_cfg_count", "cpu_cfg_fails", "metrics_count",
            "metrics_fails", "network_count", "network_fails", "mmds_count", "mmds_fails", "vsock_count", "vsock_fails", "pmem_count",
            "pmem_fails", "serial_count", "serial_fails", "hotplug_memory_count", "hotplug_memory_fails")),
        new("seccomp", Stores("num_faults")),
        new("vcpu", [.. Incs("exit_io_in", "exit_io_out", "exit_mmio_read", "exit_mmio_write", "failures", "kvmclock_ctrl_fails"),
            .. Agg("exit_io_in_agg"), .. Agg("exit_io_out_agg"), .. Agg("exit_mmio_read_agg"), .. Agg("exit_mmio_write_agg")]),
        new("vmm", Stores("panic_count")),
        // SignalMetrics: every fatal signal is stored (the process exits on it); only sigpipe counts.
        new("signals", [.. Stores("sigbus", "sigsegv", "sigxfsz", "sigxcpu"), I("sigpipe"), .. Stores("sighup", "sigill")]),
        new("vsock", Incs("activate_fails", "cfg_fails", "rx_queue_event_fails", "tx_queue_event_fails", "ev_queue_event_fails",
            "muxer_event_fails", "conn_event_fails", "rx_queue_event_count", "tx_queue_event_count", "rx_bytes_count", "tx_bytes_count",
            "rx_packets_count", "tx_packets_count", "conns_added", "conns_killed", "conns_removed", "killq_resync", "tx_flush_fails",
            "tx_write_fails", "rx_read_fails")),
        new("entropy", Incs("activate_fails", "entropy_event_fails", "entropy_event_count", "entropy_bytes", "host_rng_fails",
            "entropy_rate_limiter_throttled", "rate_limiter_event_count")),
        new("pmem", Incs("activate_fails", "cfg_fails", "event_fails", "queue_event_count", "rate_limiter_throttled_events",
            "rate_limiter_event_count"), PerDevice: true),
        // vhost_user_metrics.rs: one vhost_user_{name} object per device (name "block_{drive_id}"), and no aggregate.
        new("vhost_user", [.. Incs("activate_fails", "cfg_fails"), .. Stores("init_time_us", "activate_time_us", "config_change_time_us")],
            PerDevice: true, NoAggregate: true),
        new("interrupts", Incs("triggers", "config_updates")),
        new("memory_hotplug", [.. Incs("activate_fails", "queue_event_fails", "queue_event_count"), .. Agg("plug_agg"),
            .. Incs("plug_count", "plug_bytes", "plug_fails"), .. Agg("unplug_agg"),
            .. Incs("unplug_count", "unplug_bytes", "unplug_fails", "unplug_discard_fails"), .. Agg("unplug_all_agg"),
            .. Incs("unplug_all_count", "unplug_all_fails"), .. Agg("state_agg"), .. Incs("state_count", "state_fails")]),
    ];
}
