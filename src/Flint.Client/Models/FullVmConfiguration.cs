using System.Text.Json.Serialization;

namespace Flint.Client.Models;

/// <summary>
/// GET /vm/config: every configured resource (swagger <c>FullVmConfiguration</c>); also the shape of Firecracker's
/// <c>--config-file</c>. Its top-level keys are kebab-case, unlike the rest of the API.
/// </summary>
public sealed record FullVmConfiguration
{
    /// <summary>The balloon device, if configured.</summary>
    public Balloon? Balloon { get; init; }

    /// <summary>All block devices.</summary>
    public IReadOnlyList<Drive>? Drives { get; init; }

    /// <summary>The boot source (empty after a snapshot restore).</summary>
    [JsonPropertyName("boot-source")]
    public BootSource? BootSource { get; init; }

    /// <summary>The custom CPU template, if any.</summary>
    [JsonPropertyName("cpu-config")]
    public CpuConfig? CpuConfig { get; init; }

    /// <summary>The logger, if configured.</summary>
    public Logger? Logger { get; init; }

    /// <summary>The machine configuration.</summary>
    [JsonPropertyName("machine-config")]
    public MachineConfiguration? MachineConfig { get; init; }

    /// <summary>The metrics output, if configured.</summary>
    public Metrics? Metrics { get; init; }

    /// <summary>The hotpluggable memory, if configured.</summary>
    [JsonPropertyName("memory-hotplug")]
    public MemoryHotplugConfig? MemoryHotplug { get; init; }

    /// <summary>The MMDS configuration, if any.</summary>
    [JsonPropertyName("mmds-config")]
    public MmdsConfig? MmdsConfig { get; init; }

    /// <summary>All network interfaces.</summary>
    [JsonPropertyName("network-interfaces")]
    public IReadOnlyList<NetworkInterface>? NetworkInterfaces { get; init; }

    /// <summary>All pmem devices.</summary>
    public IReadOnlyList<Pmem>? Pmem { get; init; }

    /// <summary>The vsock device, if configured.</summary>
    public Vsock? Vsock { get; init; }

    /// <summary>The entropy device, if configured.</summary>
    public EntropyDevice? Entropy { get; init; }
}
