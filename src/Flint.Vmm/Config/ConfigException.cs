namespace Flint.Vmm.Config;

/// <summary>
/// Bad configuration: the VMM refuses it before creating anything (exit 1 from the CLI's config file, 400 from the
/// API). <see cref="Detail"/> is the inner text the API prefixes with its action's area; <see cref="Exception.Message"/>
/// is the config file's text, the detail behind the section's ResourcesError prefix ("Boot source error: ...").
/// </summary>
public sealed class ConfigException : Exception
{
    public ConfigArea Area { get; }
    public string Detail { get; }

    public ConfigException(string message) : base(message) { Detail = message; }

    public ConfigException(ConfigArea area, string detail) : base(ConfigAreas.Prefix(area) + detail)
    {
        Area = area;
        Detail = detail;
    }
}

/// <summary>The config-file section a failure belongs to: Firecracker's ResourcesError variants (resources.rs).</summary>
public enum ConfigArea { None, Json, File, BootSource, Block, Machine, Net, Vsock, Balloon, Entropy, Mmds, MmdsConfig, Logger, Metrics, Pmem, MemoryHotplug }

public static class ConfigAreas
{
    /// <summary>ResourcesError's Display prefix for <paramref name="area"/>.</summary>
    public static string Prefix(ConfigArea area) => area switch
    {
        ConfigArea.Json => "Invalid JSON: ",
        ConfigArea.File => "File operation error: ",
        ConfigArea.BootSource => "Boot source error: ",
        ConfigArea.Block => "Block device error: ",
        ConfigArea.Machine => "VM config error: ",
        ConfigArea.Net => "Network device error: ",
        ConfigArea.Vsock => "Vsock device error: ",
        ConfigArea.Balloon => "Balloon device error: ",
        ConfigArea.Entropy => "Entropy device error: ",
        ConfigArea.Mmds => "MMDS error: ",
        ConfigArea.MmdsConfig => "MMDS config error: ",
        ConfigArea.Logger => "Logger error: ",
        ConfigArea.Metrics => "Metrics error: ",
        ConfigArea.Pmem => "Pmem device error: ",
        ConfigArea.MemoryHotplug => "Memory hotplug config error: ",
        _ => "",
    };
}
