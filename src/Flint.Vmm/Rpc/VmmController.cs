using System.Text.Json;
using System.Text.Json.Nodes;
using Flint.Vmm.Config;
using Flint.Vmm.Logging;

namespace Flint.Vmm.Rpc;

/// <summary>
/// The state machine behind the API, run on the VMM thread: holds the pre-boot configuration, validates every
/// change before applying it (a refused request leaves the configuration exactly as it was), starts the microVM
/// through the injected factory and forwards runtime requests to it.
/// </summary>
public sealed partial class VmmController : IApiHandler
{
    public const string AppName = "Firecracker"; // what Firecracker reports in GET /; clients compare it (docs/compatibility.md)
    public const string NotSupportedAfterStart = "The requested operation is not supported after starting the microVM.";
    public const string NotSupportedBeforeStart = "The requested operation is not supported before starting the microVM.";

    private readonly Func<VmConfig, IRunningVm> _startVm;
    private readonly VmConfig _cfg;
    private IRunningVm? _vm;

    public string InstanceId { get; }
    public string VmmVersion { get; }

    /// <summary>Applies PUT /logger (default: the process <see cref="Logger"/>). Exceptions become a 400.</summary>
    public Action<LoggerConfig> ConfigureLogger { get; init; } = ApplyToProcessLogger;
    /// <summary>Applies PUT /metrics; default: the configuration is only recorded.</summary>
    public Action<MetricsConfig>? ConfigureMetrics { get; init; }
    /// <summary>Runs FlushMetrics; default: 204 once metrics are configured.</summary>
    public Action? FlushMetricsHandler { get; init; }
    /// <summary>The MMDS data store, shared with the virtio-net devices that serve it to the guest.</summary>
    public Flint.Devices.Mmds.MmdsStore MmdsStore { get; init; } = new();

    public VmmController(Func<VmConfig, IRunningVm> startVm, string instanceId = "anonymous-instance", string vmmVersion = "0.1.0")
    {
        _startVm = startVm;
        InstanceId = instanceId;
        VmmVersion = vmmVersion;
        _cfg = new VmConfig { MachineConfig = new MachineConfig() };
    }

    /// <summary>For --config-file with the API up: the VM was built and started outside the API.</summary>
    public void AttachRunning(VmConfig config, IRunningVm vm)
    {
        CopyInto(config, _cfg);
        _cfg.MachineConfig ??= new MachineConfig();
        _vm = vm;
    }

    public bool IsStarted => _vm != null;
    public IRunningVm? RunningVm => _vm;

    /// <summary>The live configuration (read-only use: GET /vm/config form).</summary>
    public VmConfig Configuration => _cfg;

    public string State => _vm == null ? "Not started" : _vm.IsPaused ? "Paused" : "Running";

    /// <summary>Parses and handles one request (for callers that have method, path and body).</summary>
    public ApiResponse Handle(string method, string path, string? body)
    {
        var p = ApiRequestParser.Parse(method, path, body);
        return p.Error != null ? p.Error.ToResponse() : Handle(p.Action!);
    }

    public ApiResponse Handle(VmmAction action)
    {
        try
        {
            if (IsPreBootOnly(action) && _vm != null) return ApiResponse.Fault(NotSupportedAfterStart);
            if (IsPostBootOnly(action) && _vm == null) return ApiResponse.Fault(NotSupportedBeforeStart);
            NoteBootPath(action);
            return Dispatch(action);
        }
        catch (ApiFault f)
        {
            return ApiResponse.Fault(f.Message, f.Status);
        }
        catch (Exception e)
        {
            // Not the client's doing: a bug in Flint. The details go to the log, never to the client (no .NET text in
            // answers); the status says "internal" so a client does not retry a request it believes malformed.
            Logger.Error($"API request {action.GetType().Name} hit an internal error: {e}");
            return ApiResponse.Fault(InternalErrorMessage, 500);
        }
    }

    public const string InternalErrorMessage = "Internal error: the VMM failed unexpectedly while handling the request; the details are in its log.";

    /// <summary>
    /// Failures a request can meet without Flint being wrong: bad input the checks let through to the VM or the host
    /// (a missing file, a full disk, a device refusing an operation, a KVM error). These become 400 answers with the
    /// reason, as Firecracker answers its VmmActionErrors. Anything else (a null dereference, an index out of range, a
    /// disposed object) is a bug and becomes a 500 from <see cref="Handle(VmmAction)"/>.
    /// </summary>
    internal static bool IsRequestFailure(Exception e) => e switch
    {
        ObjectDisposedException => false,
        // Plain ArgumentException is how a few builders refuse a value; its null and range subclasses are bugs.
        ArgumentException a when a.GetType() == typeof(ArgumentException) => true,
        ConfigException or IOException or UnauthorizedAccessException or InvalidOperationException or FormatException
            or OverflowException or JsonException or Flint.Sys.SysException or Flint.Memory.GuestMemoryException
            or Flint.Arch.X86.KernelLoadException or Flint.Arch.X86.InitrdLoadException
            or Flint.Arch.X86.KernelCmdlineException
            // A vCPU that did not pause or resume in time, or had already exited: Firecracker's 400 "Failed to pause".
            or VcpuStateException => true,
        _ => false,
    };

    private static bool IsPreBootOnly(VmmAction a) => a is PutBootSource or PutDrive or PutMachineConfig or PatchMachineConfig
        or PutLogger or PutMetrics or StartMicroVm or PutCpuConfig or PutNetworkInterface or PutVsock or PutEntropy
        or PutBalloon or PutMmdsConfig or LoadSnapshot;

    private static bool IsPostBootOnly(VmmAction a) => a is PatchDrive or PatchNetworkInterface or SendCtrlAltDel or Pause
        or Resume or PatchBalloon or PatchBalloonStatsInterval or GetBalloonStats or CreateSnapshot;

    private sealed class ApiFault(string message, int status = 400) : Exception(message)
    {
        public int Status { get; } = status;
    }

    private ApiResponse Dispatch(VmmAction action)
    {
        switch (action)
        {
            case GetVmInstanceInfo: return ApiResponse.Ok(InstanceInfoJson());
            case GetVersion: return ApiResponse.Ok(JsonText.Serialize(w => { w.WriteStartObject(); w.WriteString("firecracker_version", VmmVersion); w.WriteEndObject(); }));
            case GetVmConfig: return ApiResponse.Ok(JsonSerializer.Serialize(_cfg, ConfigJsonContext.Default.VmConfig));
            case GetMachineConfig: return ApiResponse.Ok(MachineConfigJson(_cfg.MachineConfig!));

            case PutBootSource b: SetBootSource(b.Config); return ApiResponse.NoContent;
            case PutDrive d: SetDrive(d.Config); return ApiResponse.NoContent;
            case PatchDrive pd: UpdateDrive(pd); return ApiResponse.NoContent;
            case PutMachineConfig m: SetMachineConfig(m.Config); return ApiResponse.NoContent;
            case PatchMachineConfig pm:
            {
                var cur = _cfg.MachineConfig!;
                SetMachineConfig(new MachineConfig
                {
                    VcpuCount = pm.VcpuCount ?? cur.VcpuCount,
                    MemSizeMib = pm.MemSizeMib ?? cur.MemSizeMib,
                    Smt = pm.Smt ?? cur.Smt,
                    TrackDirtyPages = pm.TrackDirtyPages ?? cur.TrackDirtyPages,
                    HugePages = pm.HugePages ?? cur.HugePages,
                    CpuTemplate = pm.CpuTemplate ?? cur.CpuTemplate,
                });
                return ApiResponse.NoContent;
            }
            case PutLogger l: SetLogger(l.Config); return ApiResponse.NoContent;
            case PutMetrics m: SetMetrics(m.Config); return ApiResponse.NoContent;

            case StartMicroVm: Start(); return ApiResponse.NoContent;
            case SendCtrlAltDel: Runtime(() => _vm!.SendCtrlAltDel(), "Failed to send Ctrl+Alt+Del"); return ApiResponse.NoContent;
            case FlushMetrics: Flush(); return ApiResponse.NoContent;
            case Pause: Runtime(() => _vm!.Pause(), "Failed to pause the microVM"); return ApiResponse.NoContent;
            case Resume: Runtime(() => _vm!.Resume(), "Failed to resume the microVM"); return ApiResponse.NoContent;

            case PutCpuConfig c:
                try { CpuTemplateConfig.Parse(c.Config); }
                catch (ConfigException e) { throw new ApiFault(e.Message); }
                _cfg.CpuConfig = c.Config;
                return ApiResponse.NoContent;
            case PutNetworkInterface n: SetNet(n); return ApiResponse.NoContent;
            case PatchNetworkInterface pn:
                if (!(_cfg.NetworkInterfaces ?? []).Any(e => e.GetProperty("iface_id").GetString() == pn.IfaceId))
                    throw new ApiFault($"Invalid network interface ID - not found: {pn.IfaceId}.");
                Runtime(() => _vm!.PatchNetwork(pn.IfaceId, pn.RxRateLimiter, pn.TxRateLimiter), "Unable to patch the network interface");
                return ApiResponse.NoContent;
            case PutVsock v: _cfg.Vsock = v.Config; return ApiResponse.NoContent;
            case PutEntropy e: _cfg.Entropy = e.Config; return ApiResponse.NoContent;

            case PutBalloon b:
                if (b.AmountMib > _cfg.MachineConfig!.MemSizeMib) throw new ApiFault("Amount of pages requested is too large.");
                if (_cfg.MachineConfig.HugePages == "2M") throw new ApiFault(ConfigLoader.BalloonWithHugePages);
                _cfg.Balloon = b.Config;
                return ApiResponse.NoContent;
            case GetBalloon:
                if (_cfg.Balloon is not { } bal || bal.ValueKind == JsonValueKind.Null) throw new ApiFault("No balloon device found.");
                return ApiResponse.Ok(_vm != null ? _vm.GetBalloonJson() : bal.GetRawText());
            case PatchBalloon pb:
                RequireBalloon();
                Runtime(() => _vm!.PatchBalloon(pb.AmountMib), "Unable to update the balloon");
                return ApiResponse.NoContent;
            case PatchBalloonStatsInterval ps:
                RequireBalloon();
                Runtime(() => _vm!.PatchBalloonStatsInterval(ps.StatsPollingIntervalS), "Unable to update the balloon statistics interval");
                return ApiResponse.NoContent;
            case GetBalloonStats:
            {
                RequireBalloon();
                string json = "";
                Runtime(() => json = _vm!.GetBalloonStatsJson(), "Unable to get the balloon statistics");
                return ApiResponse.Ok(json);
            }

            case PutMmds pm: Mmds(() => MmdsStore.Put(pm.Data)); return ApiResponse.NoContent;
            case PatchMmds pt: Mmds(() => MmdsStore.Patch(pt.Patch)); return ApiResponse.NoContent;
            case GetMmds: return ApiResponse.Ok(MmdsStore.GetJson());
            case PutMmdsConfig mc: SetMmdsConfig(mc); return ApiResponse.NoContent;

            case CreateSnapshot cs: return CreateSnapshotAction(cs);
            case LoadSnapshot ls: return LoadSnapshotAction(ls);
        }
        throw new ApiFault($"Unsupported action {action.GetType().Name}.");
    }

    // ---- GET bodies ----

    private string InstanceInfoJson() => JsonText.Serialize(w =>
    {
        w.WriteStartObject();
        w.WriteString("id", InstanceId);
        w.WriteString("state", State);
        w.WriteString("vmm_version", VmmVersion);
        w.WriteString("app_name", AppName);
        w.WriteEndObject();
    });

    private static string MachineConfigJson(MachineConfig m) => JsonText.Serialize(w =>
    {
        w.WriteStartObject();
        w.WriteNumber("vcpu_count", m.VcpuCount);
        w.WriteNumber("mem_size_mib", m.MemSizeMib);
        w.WriteBoolean("smt", m.Smt);
        if (m.CpuTemplate != null) w.WriteString("cpu_template", m.CpuTemplate);
        w.WriteBoolean("track_dirty_pages", m.TrackDirtyPages);
        w.WriteString("huge_pages", m.HugePages ?? "None");
        w.WriteEndObject();
    });

    // ---- pre-boot configuration ----

    private void SetBootSource(BootSourceConfig b)
    {
        if (b.KernelImagePath.Length == 0) throw new ApiFault("The kernel file cannot be opened: the path is empty.");
        CheckOpen(b.KernelImagePath, false, "The kernel file cannot be opened");
        if (b.InitrdPath != null) CheckOpen(b.InitrdPath, false, "The initrd file cannot be opened");
        if (b.BootArgs is { } args && System.Text.Encoding.UTF8.GetByteCount(args) >= 2048)
            throw new ApiFault("The kernel command line is invalid: it is longer than 2047 bytes.");
        _cfg.BootSource = b;
    }

    private void SetDrive(DriveConfig d)
    {
        if (d.Socket != null) throw new ApiFault($"Drive \"{d.DriveId}\": vhost-user block (socket) is not supported yet by this build of Flint.");
        if (string.IsNullOrEmpty(d.PathOnHost)) throw new ApiFault($"Unable to create the block device: path_on_host is required for drive \"{d.DriveId}\".");
        if (d.IsRootDevice && _cfg.Drives.Any(x => x.IsRootDevice && x.DriveId != d.DriveId))
            throw new ApiFault("A root block device already exists!");
        CheckOpen(d.PathOnHost, d.IsReadOnly != true, "Unable to create the block device: cannot open the backing file");

        var list = new List<DriveConfig>(_cfg.Drives);
        int i = list.FindIndex(x => x.DriveId == d.DriveId);
        if (i >= 0) list[i] = d; else list.Add(d);
        if (d.IsRootDevice) { list.Remove(d); list.Insert(0, d); } // Firecracker keeps the root device first
        _cfg.Drives = list;
    }

    private void RequireBalloon()
    {
        if (_cfg.Balloon is not { ValueKind: not JsonValueKind.Null }) throw new ApiFault("No balloon device found.");
    }

    private void UpdateDrive(PatchDrive p)
    {
        var d = _cfg.Drives.FirstOrDefault(x => x.DriveId == p.DriveId) ?? throw new ApiFault("Invalid block device ID!");
        if (p.RateLimiter is { ValueKind: not JsonValueKind.Null } rl)
        {
            try { _vm!.PatchDriveRateLimiter(p.DriveId, rl); }
            catch (Exception e) when (IsRequestFailure(e)) { throw new ApiFault($"Unable to patch the block device: {e.Message}"); }
            d.RateLimiter = rl.Clone();
        }
        if (p.PathOnHost == null) return;
        CheckOpen(p.PathOnHost, d.IsReadOnly != true, "Unable to patch the block device: cannot open the backing file");
        try { _vm!.PatchDrive(p.DriveId, p.PathOnHost); }
        catch (Exception e) when (IsRequestFailure(e)) { throw new ApiFault($"Unable to patch the block device: {e.Message}"); }
        d.PathOnHost = p.PathOnHost;
    }

    private void SetMachineConfig(MachineConfig m)
    {
        if (m.VcpuCount < 1 || m.VcpuCount > ConfigLoader.MaxVcpus || (m.Smt && m.VcpuCount > 1 && m.VcpuCount % 2 != 0))
            throw new ApiFault("The vCPU number is invalid! The vCPU number can only be 1 or an even number when SMT is enabled.");
        if (m.MemSizeMib <= 0) throw new ApiFault("The memory size (MiB) is invalid.");
        if (ConfigLoader.HugePagesError(m, ConfigLoader.Present(_cfg.Balloon) != null) is { } hp) throw new ApiFault(hp);
        if (m.CpuTemplate is not (null or "None"))
            throw new ApiFault($"The static CPU template \"{m.CpuTemplate}\" is not supported by this build of Flint.");
        if (_cfg.Balloon is { } bal && bal.TryGetProperty("amount_mib", out var amt) && amt.GetInt64() > m.MemSizeMib)
            throw new ApiFault("Amount of pages requested is too large.");
        _cfg.MachineConfig = m;
    }

    private void SetLogger(LoggerConfig l)
    {
        if (_cfg.Logger != null) throw new ApiFault("Reinitialization of logger not allowed.");
        try { ConfigureLogger(l); }
        catch (InvalidOperationException) { throw new ApiFault("Reinitialization of logger not allowed."); }
        catch (Exception e) when (IsRequestFailure(e)) { throw new ApiFault($"Cannot initialize the logger: {e.Message}"); }
        _cfg.Logger = l;
    }

    private static void ApplyToProcessLogger(LoggerConfig l)
    {
        LogLevel? level = null;
        if (l.Level != null && LogLevels.TryParse(l.Level, out var lv)) level = lv;
        Logger.Configure(l.LogPath, level, l.ShowLevel, l.ShowLogOrigin, l.Module);
    }

    private void SetMetrics(MetricsConfig m)
    {
        if (_cfg.Metrics != null) throw new ApiFault("Reinitialization of metrics not allowed.");
        try { ConfigureMetrics?.Invoke(m); }
        catch (ConfigException e) { throw new ApiFault(e.Message); }
        catch (Exception e) when (IsRequestFailure(e)) { throw new ApiFault($"Cannot initialize the metrics system due to bad user input: {e.Message}"); }
        _cfg.Metrics = m;
    }

    private void Flush()
    {
        if (FlushMetricsHandler == null)
        {
            if (_cfg.Metrics == null) throw new ApiFault("The metrics system is not initialized.");
            return;
        }
        // Firecracker: VmmActionError::InternalVmm(VmmError::Metrics(MetricsError::Write)), a 400 like its other errors.
        try { FlushMetricsHandler(); }
        catch (Exception e) when (IsRequestFailure(e)) { throw new ApiFault($"Internal VMM error: Metrics error: {e.Message}"); }
    }

    private void SetNet(PutNetworkInterface n)
    {
        var list = _cfg.NetworkInterfaces ?? [];
        foreach (var e in list)
        {
            string id = e.GetProperty("iface_id").GetString()!;
            if (id == n.IfaceId) continue;
            if (e.GetProperty("host_dev_name").GetString() == n.HostDevName)
                throw new ApiFault($"The host device name {n.HostDevName} is already in use.");
            if (n.GuestMac != null && e.TryGetProperty("guest_mac", out var mac) && mac.ValueKind == JsonValueKind.String
                && string.Equals(mac.GetString(), n.GuestMac, StringComparison.OrdinalIgnoreCase))
                throw new ApiFault($"The MAC address is already in use: {n.GuestMac}.");
        }
        var copy = new List<JsonElement>(list);
        int i = copy.FindIndex(e => e.GetProperty("iface_id").GetString() == n.IfaceId);
        if (i >= 0) copy[i] = n.Config; else copy.Add(n.Config);
        _cfg.NetworkInterfaces = copy;
    }

    private void SetMmdsConfig(PutMmdsConfig c)
    {
        if (c.NetworkInterfaces.Count == 0)
            throw new ApiFault("The list of network interface IDs that allow forwarding MMDS requests is empty.");
        var known = (_cfg.NetworkInterfaces ?? []).Select(e => e.GetProperty("iface_id").GetString()).ToHashSet();
        if (c.NetworkInterfaces.Any(id => !known.Contains(id)))
            throw new ApiFault("The list of network interface IDs provided contains at least one ID that does not correspond to any existing network interface.");
        if (!IsLinkLocal(c.Ipv4Address))
            throw new ApiFault($"The MMDS IPv4 address is not link local: {c.Ipv4Address}.");
        _cfg.MmdsConfig = c.Config;
    }

    private static bool IsLinkLocal(string ip)
    {
        var parts = ip.Split('.');
        if (parts.Length != 4) return false;
        var b = new int[4];
        for (int i = 0; i < 4; i++)
        {
            if (parts[i].Length is 0 or > 3 || !parts[i].All(char.IsAsciiDigit) || (parts[i].Length > 1 && parts[i][0] == '0')) return false;
            b[i] = int.Parse(parts[i]);
            if (b[i] > 255) return false;
        }
        // 169.254.0.0/16 without the reserved first and last /24.
        return b[0] == 169 && b[1] == 254 && b[2] is >= 1 and <= 254;
    }

    /// <summary>Runs a store operation, turning its errors (400, or 413 over the size limit) into API faults.</summary>
    private static void Mmds(Action op)
    {
        try { op(); }
        catch (Flint.Devices.Mmds.MmdsStoreException e) { throw new ApiFault(e.Message, e.StatusCode); }
    }



    // ---- start and runtime ----

    private void Start()
    {
        if (_cfg.BootSource == null) throw new ApiFault("Cannot start microvm without kernel configuration.");
        try { ConfigLoader.Validate(_cfg); }
        catch (ConfigException e) { throw new ApiFault(e.Message); }
        IRunningVm vm;
        try { vm = _startVm(_cfg); }
        catch (Exception e) when (IsRequestFailure(e)) { throw new ApiFault($"Failed to start the microVM: {e.Message}"); }
        _vm = vm;
    }

    private static void Runtime(Action a, string what)
    {
        try { a(); }
        catch (Exception e) when (IsRequestFailure(e)) { throw new ApiFault($"{what}: {e.Message}"); }
    }

    private static void CheckOpen(string path, bool write, string what)
    {
        try
        {
            using var f = new FileStream(path, FileMode.Open, write ? FileAccess.ReadWrite : FileAccess.Read, FileShare.ReadWrite);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new ApiFault($"{what} {path}: {e.Message}");
        }
    }

    private static void CopyInto(VmConfig from, VmConfig to)
    {
        to.BootSource = from.BootSource;
        to.Drives = [.. from.Drives];
        to.MachineConfig = from.MachineConfig;
        to.CpuConfig = from.CpuConfig;
        to.NetworkInterfaces = from.NetworkInterfaces;
        to.Vsock = from.Vsock;
        to.Logger = from.Logger;
        to.Metrics = from.Metrics;
        to.MmdsConfig = from.MmdsConfig;
        to.Entropy = from.Entropy;
        to.Balloon = from.Balloon;
    }
}
