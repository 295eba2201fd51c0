using System.Text.Json.Serialization;

namespace Flint.Vmm.Config;

/// <summary>
/// One virtio-pmem device (Firecracker's vmm_config/pmem.rs PmemConfig; the config file's "pmem" list and
/// PUT /pmem/{id}). The backing file is opened and mapped at InstanceStart, as Firecracker does.
/// </summary>
public sealed class PmemConfig
{
    [JsonPropertyName("id"), JsonRequired] public string Id { get; set; } = "";
    [JsonPropertyName("path_on_host"), JsonRequired] public string PathOnHost { get; set; } = "";
    [JsonPropertyName("root_device")] public bool RootDevice { get; set; }
    [JsonPropertyName("read_only")] public bool ReadOnly { get; set; }
    [JsonPropertyName("rate_limiter")] public System.Text.Json.JsonElement? RateLimiter { get; set; }
}

/// <summary>Firecracker's PmemBuilder::build rules and PmemConfigError texts, one place for the API and the config file.</summary>
public static class PmemRules
{
    public const string AddingSecondRootDevice = "Attempt to add pmem as a root device while the root device defined as a block device";
    public const string RootPmemDeviceAlreadyExist = "A root pmem device already exist";

    /// <summary>
    /// Inserts or replaces <paramref name="config"/> in <paramref name="list"/> (a new id goes last: devices are
    /// /dev/pmem0, /dev/pmem1... in that order). Returns Firecracker's error text, or null when it was applied.
    /// </summary>
    public static string? Insert(List<PmemConfig> list, PmemConfig config, bool hasBlockRoot)
    {
        if (config.RootDevice && hasBlockRoot) return AddingSecondRootDevice;
        int i = list.FindIndex(c => c.Id == config.Id);
        bool otherRoot = list.Any(c => c.RootDevice && c.Id != config.Id);
        if (config.RootDevice && otherRoot) return RootPmemDeviceAlreadyExist;
        if (i >= 0) list[i] = config; else list.Add(config);
        return null;
    }
}
