using System.Text.Json;
using Flint.Vmm.Rpc;

namespace Flint.Vmm.Config;

/// <summary>Parses and validates Firecracker-format configuration JSON.</summary>
public static class ConfigLoader
{
    public const int MaxVcpus = 32;

    /// <summary>Firecracker's MachineConfigError::InvalidVcpuCount (it names the limit).</summary>
    public static readonly string InvalidVcpuCount =
        $"The number of vCPUs must be greater than 0, less than {MaxVcpus} and must be 1 or an even number if SMT is enabled.";

    public static VmConfig LoadFile(string path)
    {
        string text;
        try { text = File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException(ConfigArea.File, IoErrorText.Of(e, path));
        }
        return Parse(text);
    }

    /// <summary>
    /// Parses a config file as Firecracker's VmResources::from_json does: serde's errors ("Invalid JSON: missing field
    /// `drives` at line 1 column 2"), unknown top-level keys skipped, Firecracker's sections Flint does not implement
    /// refused by name; then <see cref="Validate"/>.
    /// </summary>
    public static VmConfig Parse(string json)
    {
        string jsonPrefix = ConfigAreas.Prefix(ConfigArea.Json);
        JsonBody doc;
        try { doc = JsonBody.Parse(json, Schemas.VmmConfigFile, jsonPrefix); }
        catch (JsonBodyException e)
        {
            // serde_json's Display has no final period (the API's sentence adds one).
            throw new ConfigException(ConfigArea.Json, e.Message[jsonPrefix.Length..].TrimEnd('.'));
        }
        if (DuplicateKeys.Find(json) is { } dup) throw new ConfigException(ConfigArea.Json, dup);
        RefuseUnsupported(doc.Root);
        VmConfig? cfg;
        try { cfg = JsonSerializer.Deserialize(json, ConfigJsonContext.Default.VmConfig); }
        catch (JsonException e)
        {
            // Defensive: the schema check above should have refused it. Positions only, never the serializer's text.
            throw new ConfigException(ConfigArea.Json, $"invalid type at line {(e.LineNumber ?? 0) + 1} column {(e.BytePositionInLine ?? 0) + 1}");
        }
        if (cfg == null) throw new ConfigException(ConfigArea.Json, "invalid type: null, expected struct VmmConfig at line 1 column 4");
        Validate(cfg);
        return cfg;
    }

    /// <summary>Firecracker's sections for devices Flint lacks: none left (pmem and memory-hotplug are both served);
    /// kept as the one place a future unsupported section is refused by name.</summary>
    private static void RefuseUnsupported(JNode root)
    {
        _ = root;
    }

    /// <summary>Checks everything that can be checked without touching KVM, so bad input starts no VM.</summary>
    public static void Validate(VmConfig cfg)
    {
        // Firecracker's from_json order: machine-config, then boot-source, drives, network, vsock, balloon, mmds, entropy.
        var mc = cfg.MachineConfig;
        if (mc != null)
        {
            if (MachineConfigError(mc) is { } invalid) throw new ConfigException(ConfigArea.Machine, invalid);
            if (HugePagesError(mc, Present(cfg.Balloon) != null) is { } hp) throw new ConfigException(ConfigArea.Machine, hp);
            if (CpuTemplateError(mc.CpuTemplate) is { } ct) throw new ConfigException(ct);
        }
        if (cfg.BootSource == null) throw new ConfigException("Cannot start microvm without kernel configuration.");
        CheckReadable(cfg.BootSource.KernelImagePath, ConfigArea.BootSource, e => $"The kernel file cannot be opened: {e}");
        if (cfg.BootSource.InitrdPath is { } initrd)
            CheckReadable(initrd, ConfigArea.BootSource, e => $"The initrd file cannot be opened due to invalid path or invalid permissions. {e}");
        if (cfg.Logger?.Level is { } level && !Logging.LogLevels.TryParse(level, out _))
            throw new ConfigException($"Invalid JSON: unknown variant `{level}`, expected one of `Error`, `Warning`, `Info`, `Debug`, `Trace`, `Off`.");
        if (cfg.Metrics is { MetricsPath.Length: 0 })
            throw new ConfigException("Metrics error: Cannot initialize the metrics system due to bad user input: metrics_path is empty.");

        int roots = 0;
        var ids = new HashSet<string>();
        foreach (var d in cfg.Drives)
        {
            if (!IsValidId(d.DriveId)) throw new ConfigException(ConfigArea.Block, $"Invalid drive_id \"{d.DriveId}\": use 1-64 alphanumerics or '_'.");
            if (!ids.Add(d.DriveId)) throw new ConfigException(ConfigArea.Block, $"Duplicate drive_id \"{d.DriveId}\".");
            if (d.IsRootDevice && ++roots > 1) throw new ConfigException(ConfigArea.Block, "A root block device already exists!");
            var backend = DriveKind.Of(d);
            if (backend == DriveBackend.Invalid) throw new ConfigException(ConfigArea.Block, DriveKind.InvalidConfig);
            if (backend == DriveBackend.VhostUser)
            {
                // The backend is reached when the VM is built (VmBuilder.AttachVhostUserBlock), where its own errors are reported.
                if (d.CacheType is not (null or "Unsafe" or "Writeback"))
                    throw new ConfigException(ConfigArea.Block, $"Drive \"{d.DriveId}\": unknown cache_type \"{d.CacheType}\" (Unsafe or Writeback).");
                continue;
            }
            if (string.IsNullOrEmpty(d.PathOnHost)) throw new ConfigException(ConfigArea.Block, $"Drive \"{d.DriveId}\": path_on_host is required.");
            CheckReadable(d.PathOnHost, ConfigArea.Block,
                e => $"Unable to create the virtio block device: Virtio backend error: Error manipulating the backing file: {e} {d.PathOnHost}");
            if (d.CacheType is not (null or "Unsafe" or "Writeback"))
                throw new ConfigException(ConfigArea.Block, $"Drive \"{d.DriveId}\": unknown cache_type \"{d.CacheType}\" (Unsafe or Writeback).");
            if (d.IoEngine is not (null or "Sync" or "Async"))
                throw new ConfigException(ConfigArea.Block, $"Drive \"{d.DriveId}\": unknown io_engine \"{d.IoEngine}\" (Sync or Async).");
            if (IoEngineSupport.Refusal(d.IoEngine) is { } noAsync) throw new ConfigException(ConfigArea.Block, noAsync);
            In(ConfigArea.Block, () => DeviceConfigs.Limiter(d.RateLimiter, $"drive \"{d.DriveId}\" rate_limiter"));
        }

        var netIds = new HashSet<string>();
        var tapNames = new HashSet<string>();
        foreach (var n in cfg.NetworkInterfaces ?? [])
        {
            var net = In(ConfigArea.Net, () => DeviceConfigs.Net(n));
            if (!netIds.Add(net.IfaceId)) throw new ConfigException(ConfigArea.Net, $"Duplicate iface_id \"{net.IfaceId}\".");
            if (!tapNames.Add(net.HostDevName)) throw new ConfigException(ConfigArea.Net, TapBusy(net.HostDevName));
        }
        if (Present(cfg.MmdsConfig) is { } mmds)
        {
            var m = In(ConfigArea.MmdsConfig, () => DeviceConfigs.Mmds(mmds));
            if (m.Interfaces.Any(i => !netIds.Contains(i)))
                throw new ConfigException(ConfigArea.MmdsConfig, "The list of network interface IDs provided contains at least one ID that does not correspond to any existing network interface.");
        }
        if (Present(cfg.Vsock) is { } vs) In(ConfigArea.Vsock, () => DeviceConfigs.Vsock(vs));
        if (Present(cfg.Entropy) is { } en) In(ConfigArea.Entropy, () => DeviceConfigs.Entropy(en));
        if (Present(cfg.Balloon) is { } bl)
        {
            var b = In(ConfigArea.Balloon, () => DeviceConfigs.Balloon(bl));
            if (b.AmountMib > (ulong)(mc?.MemSizeMib ?? 128)) throw new ConfigException(ConfigArea.Balloon, "Amount of pages requested is too large.");
        }
        ValidatePmem(cfg);
        if (cfg.MemoryHotplug?.Error() is { } hotplugError) throw new ConfigException(ConfigArea.MemoryHotplug, hotplugError);
        if (Present(cfg.CpuConfig) is { } cpu) CpuTemplateConfig.Parse(cpu);
        int virtioDevices = cfg.Drives.Count + netIds.Count + (Present(cfg.Vsock) != null ? 1 : 0)
            + (Present(cfg.Entropy) != null ? 1 : 0) + (Present(cfg.Balloon) != null ? 1 : 0) + cfg.Pmem.Count
            + (cfg.MemoryHotplug != null ? 1 : 0);
        if (virtioDevices > MaxVirtioDevices)
            throw new ConfigException($"Too many virtio devices ({virtioDevices}): at most {MaxVirtioDevices} fit the legacy IRQ range.");
    }

    /// <summary>
    /// The "pmem" list as Firecracker's VmResources builds it (PmemBuilder::build per entry): a root device next to a
    /// root drive, or a second root pmem, is refused; a repeated id replaces the earlier entry. The backing files are
    /// opened at start, as Firecracker opens them (Pmem::new in the builder).
    /// </summary>
    private static void ValidatePmem(VmConfig cfg)
    {
        var built = new List<PmemConfig>();
        bool blockRoot = cfg.Drives.Any(d => d.IsRootDevice);
        foreach (var p in cfg.Pmem)
        {
            if (!IsValidId(p.Id)) throw new ConfigException(ConfigArea.Pmem, $"Invalid pmem id \"{p.Id}\": use 1-64 alphanumerics or '_'.");
            if (PmemRules.Insert(built, p, blockRoot) is { } err) throw new ConfigException(ConfigArea.Pmem, err);
            In(ConfigArea.Pmem, () => DeviceConfigs.Limiter(p.RateLimiter, $"pmem \"{p.Id}\" rate_limiter"));
        }
        if (built.Count != cfg.Pmem.Count) cfg.Pmem = built;
    }

    /// <summary>Runs a section's check; its plain failures get the section's ResourcesError prefix (ConfigException.Area).</summary>
    private static T In<T>(ConfigArea area, Func<T> check)
    {
        try { return check(); }
        catch (ConfigException e) when (e.Area == ConfigArea.None) { throw new ConfigException(area, e.Message); }
    }

    /// <summary>MachineConfigError's texts for vcpu_count and mem_size_mib (one place for the config file and the API). Null when fine.</summary>
    public static string? MachineConfigError(MachineConfig mc)
    {
        if (mc.VcpuCount < 1 || mc.VcpuCount > MaxVcpus || (mc.Smt && mc.VcpuCount > 1 && mc.VcpuCount % 2 != 0))
            return $"The number of vCPUs must be greater than 0, less than {MaxVcpus} and must be 1 or an even number if SMT is enabled.";
        if (mc.MemSizeMib <= 0) return InvalidMemorySize;
        return null;
    }

    public const string InvalidMemorySize = "The memory size (MiB) is either 0, or not a multiple of the configured page size.";
    public const string IncompatibleBalloonSize = "The memory size (MiB) is smaller than the previously set balloon device target size.";

    /// <summary>What Firecracker reports when a tap is opened twice (it does not compare names; the second open is busy).</summary>
    public static string TapBusy(string name) =>
        "Could not create the network device: Open tap device failed: Error while creating ifreq structure: Device or resource busy (os error 16). "
        + $"Invalid TUN/TAP Backend provided by {name}. Check our documentation on setting up the network devices.";

    /// <summary>
    /// The huge_pages rules (one place for the config file and the API): "None", "2M" (hugetlbfs; memory a multiple of
    /// 2 MiB, and no balloon, whose 4 KiB discards cannot split a huge page) or "Transparent". Null when fine.
    /// </summary>
    public static string? HugePagesError(MachineConfig mc, bool hasBalloon) => mc.HugePages switch
    {
        null or "None" or "Transparent" => null,
        "2M" when mc.MemSizeMib % 2 != 0 => InvalidMemorySize,
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
        _ => null, // a static template Firecracker knows (Flint.Arch.X86.StaticCpuTemplates)
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

    private static void CheckReadable(string path, ConfigArea area, Func<string, string> describe)
    {
        try
        {
            using var f = new FileStream(path, FileMode.Open, FileAccess.Read);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            // A drive that is a directory gets advice after Firecracker's text; a kernel or initrd gets Firecracker's text.
            if (HostFileProblem.Directory(path, area == ConfigArea.Block) is { } dir)
                throw new ConfigException(area, area == ConfigArea.Block ? $"{describe(dir.OsError)} ({dir.Advice})" : describe(dir.OsError));
            // An empty path fails to open like a missing file (ArgumentException in .NET, ENOENT in Rust).
            throw new ConfigException(area, describe(path.Length == 0 ? "No such file or directory (os error 2)" : IoErrorText.Of(e, path)));
        }
    }
}
