namespace Flint.Client.Tests;

/// <summary>
/// API bodies copied from Firecracker's repository (main at 81b38b9dad6056d7a48073e95ac5a9aed51cb2ab), each with the
/// file it comes from. Where the docs use shell variables, a literal value stands in for the variable.
/// </summary>
internal static class SwaggerExamples
{
    // tests/framework/vm_config.json (the config file of Firecracker's own test framework; also GET /vm/config's shape).
    public const string VmConfig = """
        {
          "boot-source": { "kernel_image_path": "vmlinux.bin", "boot_args": "console=ttyS0 reboot=k panic=1", "initrd_path": null },
          "drives": [
            { "drive_id": "rootfs", "partuuid": null, "is_root_device": true, "cache_type": "Unsafe", "is_read_only": false,
              "path_on_host": "bionic.rootfs.ext4", "io_engine": "Sync", "rate_limiter": null, "socket": null }
          ],
          "machine-config": { "vcpu_count": 2, "mem_size_mib": 1024, "smt": false, "track_dirty_pages": false, "huge_pages": "None" },
          "cpu-config": null, "balloon": null, "network-interfaces": [], "vsock": null, "logger": null, "metrics": null,
          "mmds-config": null, "entropy": null, "pmem": [], "memory-hotplug": null
        }
        """;

    // tests/framework/vm_config_with_mmdsv2.json
    public const string VmConfigWithMmdsV2 = """
        {
          "boot-source": { "kernel_image_path": "vmlinux.bin", "boot_args": "console=ttyS0 reboot=k panic=1", "initrd_path": null },
          "drives": [
            { "drive_id": "rootfs", "partuuid": null, "is_root_device": true, "cache_type": "Unsafe", "is_read_only": false,
              "path_on_host": "bionic.rootfs.ext4", "io_engine": "Sync", "rate_limiter": null, "socket": null }
          ],
          "machine-config": { "vcpu_count": 2, "mem_size_mib": 1024, "smt": false, "track_dirty_pages": false },
          "balloon": null,
          "network-interfaces": [
            { "iface_id": "1", "host_dev_name": "tap0", "guest_mac": "06:00:c0:a8:00:02", "rx_rate_limiter": null, "tx_rate_limiter": null }
          ],
          "vsock": null, "logger": null, "metrics": null,
          "mmds-config": { "network_interfaces": ["1"], "ipv4_address": "169.254.169.250", "version": "V2", "imds_compat": true },
          "entropy": null
        }
        """;

    // docs/getting-started.md: the logger, boot-source, rootfs drive, network interface and InstanceStart requests.
    public const string GettingStartedLogger = """{ "log_path": "./firecracker.log", "level": "Debug", "show_level": true, "show_log_origin": true }""";
    public const string GettingStartedBootSource = """{ "kernel_image_path": "./vmlinux-6.1", "boot_args": "console=ttyS0 reboot=k panic=1" }""";
    public const string GettingStartedDrive = """{ "drive_id": "rootfs", "path_on_host": "./ubuntu-24.04.ext4", "is_root_device": true, "is_read_only": false }""";
    public const string GettingStartedNetworkInterface = """{ "iface_id": "net1", "guest_mac": "06:00:AC:10:00:02", "host_dev_name": "tap0" }""";
    public const string GettingStartedAction = """{ "action_type": "InstanceStart" }""";

    // docs/snapshotting/snapshot-support.md: pause, create (Full), dirty-tracking machine config.
    public const string SnapshotPause = """{ "state": "Paused" }""";
    public const string SnapshotCreate = """{ "snapshot_type": "Full", "snapshot_path": "./snapshot_file", "mem_file_path": "./mem_file" }""";
    public const string SnapshotMachineConfig = """{ "vcpu_count": 2, "mem_size_mib": 1024, "smt": false, "track_dirty_pages": true }""";

    // docs/vsock.md: the vsock device and a snapshot load with a vsock override (the doc's trailing comma removed).
    public const string Vsock = """{ "guest_cid": 3, "uds_path": "./v.sock" }""";
    public const string SnapshotLoadWithVsockOverride = """
        { "snapshot_path": "./snapshot_file", "mem_backend": { "backend_path": "./mem_file", "backend_type": "File" },
          "vsock_override": { "uds_path": "./v.sock.2" } }
        """;

    // docs/ballooning.md: PUT /balloon with free page hinting, and the hinting start command.
    public const string BalloonWithHinting = """{ "amount_mib": 64, "deflate_on_oom": true, "stats_polling_interval_s": 1, "free_page_hinting": true }""";
    public const string BalloonHintingStart = """{ "acknowledge_on_stop": true }""";

    // src/firecracker/swagger/firecracker.yaml, definition BalloonStats (every field, values made up).
    public const string BalloonStats = """
        { "target_pages": 1, "actual_pages": 2, "target_mib": 3, "actual_mib": 4, "swap_in": 5, "swap_out": 6,
          "major_faults": 7, "minor_faults": 8, "free_memory": 9, "total_memory": 10, "available_memory": 11,
          "disk_caches": 12, "hugetlb_allocations": 13, "hugetlb_failures": 14, "oom_kill": 15, "alloc_stall": 16,
          "async_scan": 17, "direct_scan": 18, "async_reclaim": 19, "direct_reclaim": 20 }
        """;

    // src/firecracker/swagger/firecracker.yaml, definitions InstanceInfo, FirecrackerVersion, Error, BalloonHintingStatus.
    public const string InstanceInfo = """{ "app_name": "Firecracker", "id": "anonymous-instance", "state": "Not started", "vmm_version": "1.17.0-dev" }""";
    public const string Version = """{ "firecracker_version": "1.17.0-dev" }""";
    public const string Error = """{ "fault_message": "The requested operation is not supported before starting the microVM." }""";
    public const string BalloonHintingStatus = """{ "host_cmd": 2, "guest_cmd": 1 }""";

    // docs/api_requests/patch-block.md: PUT with both rate limiter buckets (the doc's missing comma added), then PATCH.
    public const string DriveWithRateLimiter = """
        { "drive_id": "scratch", "path_on_host": "./ro.ext4", "is_root_device": false, "is_read_only": true,
          "rate_limiter": { "bandwidth": { "size": 100000, "one_time_burst": 4096, "refill_time": 150 },
                            "ops": { "size": 10, "refill_time": 250 } } }
        """;
    public const string PatchDrive = """{ "drive_id": "scratch", "path_on_host": "./updated.ext4" }""";

    // docs/api_requests/patch-network-interface.md
    public const string NetworkInterfaceWithLimiters = """
        { "iface_id": "iface_1", "host_dev_name": "fctap1", "guest_mac": "06:00:c0:a8:34:02",
          "rx_rate_limiter": { "bandwidth": { "size": 1024, "one_time_burst": 1048576, "refill_time": 1000 } },
          "tx_rate_limiter": { "bandwidth": { "size": 1024, "one_time_burst": 1048576, "refill_time": 1000 } } }
        """;
    public const string PatchNetworkInterface = """
        { "iface_id": "iface_1", "rx_rate_limiter": { "bandwidth": { "size": 1048576, "one_time_burst": 1048576, "refill_time": 1000 } } }
        """;

    // docs/metrics.md: the optional metrics fields.
    public const string MetricsWithProperties = """
        { "metrics_path": "metrics.fifo", "emit_id": true, "properties": { "customer_id": "1234", "bundle_id": "fn-abc" } }
        """;

    // docs/mmds/mmds-user-guide.md
    public const string MmdsConfig = """{ "network_interfaces": ["eth0"], "ipv4_address": "169.254.170.2" }""";

    // docs/entropy.md
    public const string Entropy = """{ "rate_limiter": { "bandwidth": { "size": 1000, "one_time_burst": 0, "refill_time": 100 } } }""";

    // docs/pmem.md: PUT and PATCH.
    public const string Pmem = """{ "id": "pmem0", "path_on_host": "./some_file", "root_device": true, "read_only": false }""";
    public const string PatchPmem = """
        { "id": "pmem0", "rate_limiter": { "bandwidth": { "size": 268435456, "refill_time": 1000 }, "ops": { "size": 10, "refill_time": 1000 } } }
        """;

    // docs/memory-hotplug.md: PUT and PATCH.
    public const string MemoryHotplug = """{ "total_size_mib": 1024, "block_size_mib": 2, "slot_size_mib": 128 }""";
    public const string MemoryHotplugPatch = """{ "requested_size_mib": 512 }""";

    // src/firecracker/swagger/firecracker.yaml, definition MemoryHotplugStatus (values made up).
    public const string MemoryHotplugStatus = """
        { "total_size_mib": 1024, "slot_size_mib": 128, "block_size_mib": 2, "plugged_size_mib": 256, "requested_size_mib": 512 }
        """;

    // docs/cpu_templates/cpu-templates.md: the x86_64 and the aarch64 custom templates (the latter's missing comma added).
    public const string CpuConfigX86 = """
        { "kvm_capabilities": ["!56"],
          "cpuid_modifiers": [ { "leaf": "0x1", "subleaf": "0x0", "flags": 0,
                                 "modifiers": [ { "register": "eax", "bitmap": "0bxxxx000000000011xx00011011110010" } ] } ],
          "msr_modifiers": [ { "addr": "0x10a", "bitmap": "0b0000000000000000000000000000000000000000000000000000000000000000" } ] }
        """;
    public const string CpuConfigArm = """
        { "kvm_capabilities": ["171", "172"], "vcpu_features": [{ "index": 0, "bitmap": "0b11xxxxx" }],
          "reg_modifiers": [ { "addr": "0x603000000013c020",
                               "bitmap": "0bxxxxxxxxxxxx0000xxxxxxxxxxxx0000xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" } ] }
        """;

    // src/firecracker/swagger/firecracker.yaml, definitions SerialDevice and SnapshotLoadParams (every field).
    public const string Serial = """{ "serial_out_path": "./serial.out", "rate_limiter": { "size": 4096, "refill_time": 100 } }""";
    public const string SnapshotLoadAllFields = """
        { "snapshot_path": "./snapshot_file", "mem_backend": { "backend_type": "Uffd", "backend_path": "./uffd.sock" },
          "enable_diff_snapshots": false, "track_dirty_pages": true, "resume_vm": true,
          "network_overrides": [ { "iface_id": "eth0", "host_dev_name": "tap7" } ], "vsock_override": { "uds_path": "./v2.sock" },
          "clock_realtime": true, "huge_pages": "2M" }
        """;
}
