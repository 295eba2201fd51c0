using System.Text.Json.Serialization;

namespace Flint.Vmm.Config;

// Firecracker's configuration model: the config file (kebab-case sections) and the API bodies share these types,
// so `--config-file` and the REST API go through one code path. Field names are Firecracker's.

// Firecracker's VmmConfig has no deny_unknown_fields: unknown top-level keys are skipped (the sections inside do deny).
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Skip)]
public sealed class VmConfig
{
    [JsonPropertyName("boot-source")] public BootSourceConfig? BootSource { get; set; }
    [JsonPropertyName("drives")] public List<DriveConfig> Drives { get; set; } = [];
    [JsonPropertyName("machine-config")] public MachineConfig? MachineConfig { get; set; }
    [JsonPropertyName("cpu-config")] public System.Text.Json.JsonElement? CpuConfig { get; set; }
    [JsonPropertyName("network-interfaces")] public List<System.Text.Json.JsonElement>? NetworkInterfaces { get; set; }
    [JsonPropertyName("vsock")] public System.Text.Json.JsonElement? Vsock { get; set; }
    [JsonPropertyName("logger")] public LoggerConfig? Logger { get; set; }
    [JsonPropertyName("metrics")] public MetricsConfig? Metrics { get; set; }
    [JsonPropertyName("mmds-config")] public System.Text.Json.JsonElement? MmdsConfig { get; set; }
    [JsonPropertyName("entropy")] public System.Text.Json.JsonElement? Entropy { get; set; }
    [JsonPropertyName("balloon")] public System.Text.Json.JsonElement? Balloon { get; set; }
    [JsonPropertyName("pmem")] public List<PmemConfig> Pmem { get; set; } = [];
    [JsonPropertyName("memory-hotplug")] public MemoryHotplugConfig? MemoryHotplug { get; set; }

    /// <summary>
    /// PUT /serial's serial_out_path (null: stdout). Like Firecracker's VmResources.serial_out_path it is API-only:
    /// Firecracker's VmmConfig marks serial_config serde(skip), so the config file cannot set it, GET /vm/config does
    /// not show it, and it is not saved in snapshots.
    /// </summary>
    [JsonIgnore] public string? SerialOutPath { get; set; }

    /// <summary>PUT /serial's rate_limiter (a single token bucket, one token per byte); null: no limit.</summary>
    [JsonIgnore] public Flint.Devices.RateLimiting.TokenBucketConfig? SerialRateLimiter { get; set; }
}

public sealed class BootSourceConfig
{
    [JsonPropertyName("kernel_image_path"), JsonRequired] public string KernelImagePath { get; set; } = "";
    [JsonPropertyName("boot_args")] public string? BootArgs { get; set; }
    [JsonPropertyName("initrd_path")] public string? InitrdPath { get; set; }
}

public sealed class DriveConfig
{
    [JsonPropertyName("drive_id"), JsonRequired] public string DriveId { get; set; } = "";
    [JsonPropertyName("path_on_host")] public string? PathOnHost { get; set; }
    [JsonPropertyName("is_root_device"), JsonRequired] public bool IsRootDevice { get; set; }
    [JsonPropertyName("is_read_only")] public bool? IsReadOnly { get; set; }
    [JsonPropertyName("partuuid")] public string? PartUuid { get; set; }
    [JsonPropertyName("cache_type")] public string? CacheType { get; set; }
    [JsonPropertyName("io_engine")] public string? IoEngine { get; set; }
    [JsonPropertyName("rate_limiter")] public System.Text.Json.JsonElement? RateLimiter { get; set; }
    [JsonPropertyName("socket")] public string? Socket { get; set; }
}

public sealed class MachineConfig
{
    [JsonPropertyName("vcpu_count"), JsonRequired] public int VcpuCount { get; set; } = 1;
    [JsonPropertyName("mem_size_mib"), JsonRequired] public long MemSizeMib { get; set; } = 128;
    [JsonPropertyName("smt")] public bool Smt { get; set; }
    [JsonPropertyName("track_dirty_pages")] public bool TrackDirtyPages { get; set; }
    [JsonPropertyName("huge_pages")] public string? HugePages { get; set; }
    [JsonPropertyName("cpu_template")] public string? CpuTemplate { get; set; }
}

public sealed class LoggerConfig
{
    [JsonPropertyName("log_path")] public string? LogPath { get; set; }
    [JsonPropertyName("level")] public string? Level { get; set; }
    [JsonPropertyName("show_level")] public bool? ShowLevel { get; set; }
    [JsonPropertyName("show_log_origin")] public bool? ShowLogOrigin { get; set; }
    [JsonPropertyName("module")] public string? Module { get; set; }
}

public sealed class MetricsConfig
{
    [JsonPropertyName("metrics_path"), JsonRequired] public string MetricsPath { get; set; } = "";
    /// <summary>Firecracker: write the instance id as a top-level "id" on each line.</summary>
    [JsonPropertyName("emit_id")] public bool? EmitId { get; set; }
    /// <summary>Firecracker: operator key-value pairs written as a top-level "properties" object on each line.</summary>
    [JsonPropertyName("properties")] public Dictionary<string, string>? Properties { get; set; }
}

[JsonSourceGenerationOptions(
    UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    ReadCommentHandling = System.Text.Json.JsonCommentHandling.Disallow,
    WriteIndented = true)]
[JsonSerializable(typeof(VmConfig))]
public sealed partial class ConfigJsonContext : JsonSerializerContext;
