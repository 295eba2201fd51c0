using System.Text.Json;

namespace Flint.Vmm.Config;

/// <summary>Parses and validates Firecracker-format configuration JSON.</summary>
public static class ConfigLoader
{
    public const int MaxVcpus = 32;

    public static VmConfig LoadFile(string path)
    {
        string text;
        try { text = File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException($"Unable to read the configuration file {path}: {e.Message}");
        }
        return Parse(text);
    }

    public static VmConfig Parse(string json)
    {
        if (DuplicateKeys.Find(json) is { } dup) throw new ConfigException($"Invalid JSON: {dup}.");
        VmConfig? cfg;
        try { cfg = JsonSerializer.Deserialize(json, ConfigJsonContext.Default.VmConfig); }
        catch (JsonException e)
        {
            throw new ConfigException($"Invalid configuration JSON: {e.Message}");
        }
        if (cfg == null) throw new ConfigException("Invalid configuration JSON: the document is null.");
        Validate(cfg);
        return cfg;
    }

    /// <summary>Checks everything that can be checked without touching KVM, so bad input starts no VM.</summary>
    public static void Validate(VmConfig cfg)
    {
        if (cfg.BootSource == null) throw new ConfigException("Missing boot source: the configuration has no \"boot-source\".");
        var kernel = cfg.BootSource.KernelImagePath;
        if (string.IsNullOrEmpty(kernel)) throw new ConfigException("Invalid kernel path: kernel_image_path is empty.");
        CheckReadable(kernel, "kernel image");
        if (cfg.BootSource.InitrdPath is { } initrd) CheckReadable(initrd, "initrd");

        var mc = cfg.MachineConfig;
        if (mc != null)
        {
            if (mc.VcpuCount < 1 || mc.VcpuCount > MaxVcpus)
                throw new ConfigException($"The vCPU number is invalid! The vCPU number can only be 1 or an even number when SMT is enabled. vcpu_count must be between 1 and {MaxVcpus}, got {mc.VcpuCount}.");
            if (mc.Smt && mc.VcpuCount > 1 && mc.VcpuCount % 2 != 0)
                throw new ConfigException("The vCPU number is invalid! The vCPU number can only be 1 or an even number when SMT is enabled.");
            if (mc.MemSizeMib <= 0)
                throw new ConfigException($"The memory size (MiB) is invalid: mem_size_mib must be greater than 0, got {mc.MemSizeMib}.");
            if (HugePagesError(mc, Present(cfg.Balloon) != null) is { } hp) throw new ConfigException(hp);
            if (CpuTemplateError(mc.CpuTemplate) is { } ct) throw new ConfigException(ct);
        }
        if (cfg.Logger?.Level is { } level && !Logging.LogLevels.TryParse(level, out _))
            throw new ConfigException($"Invalid JSON: unknown variant `{level}`, expected one of `Error`, `Warning`, `Info`, `Debug`, `Trace`, `Off`.");
        if (cfg.Metrics is { MetricsPath.Length: 0 })
            throw new ConfigException("Metrics error: Cannot initialize the metrics system due to bad user input: metrics_path is empty.");

        int roots = 0;
        var ids = new HashSet<string>();
        foreach (var d in cfg.Drives)
        {
            if (!IsValidId(d.DriveId)) throw new ConfigException($"Invalid drive_id \"{d.DriveId}\": use 1-64 alphanumerics or '_'.");
            if (!ids.Add(d.DriveId)) throw new ConfigException($"Duplicate drive_id \"{d.DriveId}\".");
            if (d.IsRootDevice && ++roots > 1) throw new ConfigException("A root block device already exists!");
            if (d.Socket != null) throw new ConfigException($"Drive \"{d.DriveId}\": vhost-user block (socket) is not supported.");
            if (string.IsNullOrEmpty(d.PathOnHost)) throw new ConfigException($"Drive \"{d.DriveId}\": path_on_host is required.");
            CheckReadable(d.PathOnHost, $"drive \"{d.DriveId}\" backing file");
            if (d.CacheType is not (null or "Unsafe" or "Writeback"))
                throw new ConfigException($"Drive \"{d.DriveId}\": unknown cache_type \"{d.CacheType}\" (Unsafe or Writeback).");
            if (d.IoEngine is not (null or "Sync" or "Async"))
                throw new ConfigException($"Drive \"{d.DriveId}\": unknown io_engine \"{d.IoEngine}\" (Sync or Async).");
            if (IoEngineSupport.Refusal(d.IoEngine) is { } noAsync) throw new ConfigException(noAsync);
            DeviceConfigs.Limiter(d.RateLimiter, $"drive \"{d.DriveId}\" rate_limiter");
        }

        var netIds = new HashSet<string>();
        var tapNames = new HashSet<string>();
        foreach (var n in cfg.NetworkInterfaces ?? [])
        {
            var net = DeviceConfigs.Net(n);
            if (!netIds.Add(net.IfaceId)) throw new ConfigException($"Duplicate iface_id \"{net.IfaceId}\".");
            if (!tapNames.Add(net.HostDevName)) throw new ConfigException($"The host device name {net.HostDevName} is already in use.");
        }
        if (Present(cfg.MmdsConfig) is { } mmds)
        {
            var m = DeviceConfigs.Mmds(mmds);
            if (m.Interfaces.Any(i => !netIds.Contains(i)))
                throw new ConfigException("The list of network interface IDs provided contains at least one ID that does not correspond to any existing network interface.");
        }
        if (Present(cfg.Vsock) is { } vs) DeviceConfigs.Vsock(vs);
        if (Present(cfg.Entropy) is { } en) DeviceConfigs.Entropy(en);
        if (Present(cfg.Balloon) is { } bl)
        {
            var b = DeviceConfigs.Balloon(bl);
            if (b.AmountMib > (ulong)(mc?.MemSizeMib ?? 128)) throw new ConfigException("Amount of pages requested is too large.");
        }
        if (Present(cfg.CpuConfig) is { } cpu) CpuTemplateConfig.Parse(cpu);
        int virtioDevices = cfg.Drives.Count + netIds.Count + (Present(cfg.Vsock) != null ? 1 : 0)
            + (Present(cfg.Entropy) != null ? 1 : 0) + (Present(cfg.Balloon) != null ? 1 : 0);
        if (virtioDevices > MaxVirtioDevices)
            throw new ConfigException($"Too many virtio devices ({virtioDevices}): at most {MaxVirtioDevices} fit the legacy IRQ range.");
    }

    /// <summary>
    /// The huge_pages rules (one place for the config file and the API): "None", "2M" (hugetlbfs; memory a multiple of
    /// 2 MiB, and no balloon, whose 4 KiB discards cannot split a huge page) or "Transparent". Null when fine.
    /// </summary>
    public static string? HugePagesError(MachineConfig mc, bool hasBalloon) => mc.HugePages switch
    {
        null or "None" or "Transparent" => null,
        "2M" when mc.MemSizeMib % 2 != 0 => $"The memory size (MiB) is invalid: with 2M huge pages mem_size_mib must be a multiple of 2, got {mc.MemSizeMib}.",
        "2M" when hasBalloon => BalloonWithHugePages,
        "2M" => null,
        var v => $"Unsupported huge_pages value \"{v}\" (None, 2M or Transparent).",
    };

    /// <summary>Firecracker's x86_64 static CPU templates, in its order (serde lists them so in its error).</summary>
    public static readonly string[] StaticCpuTemplates = ["C3", "T2", "T2S", "None", "T2CL", "T2A"];

    /// <summary>
    /// cpu_template: a name Firecracker does not know is refused as serde refuses it; a template it knows but this
    /// build does not implement is refused too (silently running without the masking a client asked for would be
    /// worse). Null when fine ("None", or absent).
    /// </summary>
    public static string? CpuTemplateError(string? template) => template switch
    {
        null or "None" => null,
        _ when Array.IndexOf(StaticCpuTemplates, template) < 0 =>
            $"Invalid JSON: unknown variant `{template}`, expected one of {string.Join(", ", StaticCpuTemplates.Select(t => $"`{t}`"))}.",
        _ => $"The static CPU template \"{template}\" is not supported by this build of Flint.",
    };

    public const string BalloonWithHugePages = "A balloon device cannot be used with 2M huge pages.";

    /// <summary>The guest memory backing for <paramref name="mc"/>'s huge_pages.</summary>
    public static Flint.Memory.HugePages HugePagesOf(MachineConfig mc) => mc.HugePages switch
    {
        "2M" => Flint.Memory.HugePages.HugeTlb2M,
        "Transparent" => Flint.Memory.HugePages.Transparent,
        _ => Flint.Memory.HugePages.None,
    };

    /// <summary>virtio-mmio slots: one legacy GSI each, 5 to 23.</summary>
    public const int MaxVirtioDevices = 19;

    /// <summary>The section's JSON when it is present and not null.</summary>
    public static JsonElement? Present(JsonElement? e) =>
        e is { } v && v.ValueKind is not (JsonValueKind.Null or JsonValueKind.Undefined) ? v : null;

    /// <summary>Firecracker's path-id rule: 1-64 characters, alphanumerics and underscore.</summary>
    public static bool IsValidId(string id) =>
        id.Length is > 0 and <= 64 && id.All(c => char.IsAsciiLetterOrDigit(c) || c == '_');

    private static void CheckReadable(string path, string what)
    {
        try
        {
            using var f = new FileStream(path, FileMode.Open, FileAccess.Read);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            throw new ConfigException($"Cannot open the {what} {path}: {e.Message}");
        }
    }
}
