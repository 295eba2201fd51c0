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
    /// <summary>Runs FlushMetrics after the start; it returns quietly when no metrics are configured. Default: a 204.</summary>
    public Action? FlushMetricsHandler { get; init; }
    /// <summary>
    /// Taps and the vsock socket opened at PUT time, as Firecracker opens them; the VM factory passes the same object
    /// to the builder (<see cref="VmOptions.Preopened"/>), which takes them over.
    /// </summary>
    public Builder.PreopenedHostDevices Preopened { get; init; } = new();

    /// <summary>The MMDS data store, shared with the virtio-net devices that serve it to the guest.</summary>
    public Flint.Devices.Mmds.MmdsStore MmdsStore { get; init; } = new();

    public VmmController(Func<VmConfig, IRunningVm> startVm, string instanceId = "anonymous-instance", string vmmVersion = "0.1.0")
    {
        _startVm = startVm;
        InstanceId = instanceId;
        VmmVersion = vmmVersion;
        _cfg = new VmConfig { MachineConfig = new MachineConfig() };
        Published.Version = ApiResponse.Ok(JsonText.Serialize(w => { w.WriteStartObject(); w.WriteString("firecracker_version", VmmVersion); w.WriteEndObject(); }));
        PublishState();
    }

    /// <summary>The answers the API thread may give itself (see <see cref="PublishedAnswers"/>); kept current here.</summary>
    public PublishedAnswers Published { get; } = new();
    private string? _publishedState;

    /// <summary>After anything that may have changed the VM's state or configuration, before its answer goes out: the
    /// instance info is published again when the state changed; the machine configuration is withdrawn unless the action
    /// only read it (the next GET /machine-config goes to this thread and publishes it again).</summary>
    private void Republish(VmmAction? action)
    {
        PublishState();
        if (action is not (GetVmInstanceInfo or GetVersion or GetMachineConfig or GetVmConfig)) Published.MachineConfig = null;
    }

    private void PublishState()
    {
        string state = State;
        if (ReferenceEquals(state, _publishedState)) return; // one of three literals: no new answer, no allocation
        Published.InstanceInfo = ApiResponse.Ok(InstanceInfoJson());
        _publishedState = state;
    }

    /// <summary>For --config-file with the API up: the VM was built and started outside the API.</summary>
    public void AttachRunning(VmConfig config, IRunningVm vm)
    {
        CopyInto(config, _cfg);
        _cfg.MachineConfig ??= new MachineConfig();
        _vm = vm;
        Republish(null);
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
        bool started = false;
        try
        {
            if (IsPreBootOnly(action) && _vm != null) return ApiResponse.Fault(NotSupportedAfterStart);
            if (IsPostBootOnly(action) && _vm == null) return ApiResponse.Fault(NotSupportedBeforeStart);
            started = _vm != null;
            NoteBootPath(action);
            return Dispatch(action);
        }
        catch (ApiFault f)
        {
            // Firecracker's "<Area> error: <inner>" (VmmActionError's Display), composed in one place.
            return ApiResponse.Fault(f.Bare ? f.Message : FaultText.Compose(FaultText.Prefix(action, started), f.Message), f.Status);
        }
        catch (Exception e)
        {
            // Not the client's doing: a bug in Flint. The details go to the log, never to the client (no .NET text in
            // answers); the status says "internal" so a client does not retry a request it believes malformed.
            Logger.Error($"API request {action.GetType().Name} hit an internal error: {e}");
            return ApiResponse.Fault(InternalErrorMessage, 500);
        }
        finally
        {
            // Whatever the outcome: a request that failed half-way may still have changed the state.
            Republish(action);
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
            or Flint.Arch.X86.KernelCmdlineException or Builder.PmemAttachException
            // A vCPU that did not pause or resume in time, or had already exited: Firecracker's 400 "Failed to pause".
            or VcpuStateException => true,
        _ => false,
    };

    // PUT /drives, /network-interfaces and /pmem are allowed after the start too: there they hot-plug (VmmController.Hotplug.cs).
    private static bool IsPreBootOnly(VmmAction a) => a is PutBootSource or PutMachineConfig or PatchMachineConfig
        or PutLogger or PutMetrics or StartMicroVm or PutCpuConfig or PutVsock or PutEntropy
        or PutBalloon or PutMmdsConfig or LoadSnapshot or PutSerial or PutMemoryHotplug;

    private static bool IsPostBootOnly(VmmAction a) => a is PatchDrive or PatchNetworkInterface or SendCtrlAltDel or Pause
        or Resume or PatchBalloon or PatchBalloonStatsInterval or GetBalloonStats or CreateSnapshot or FlushMetrics
        or StartBalloonHinting or GetBalloonHintingStatus or StopBalloonHinting or PatchPmem or PatchMemoryHotplug or GetMemoryHotplug
        or HotUnplugDevice;

    /// <summary>A refused request: the inner text, which <see cref="Handle(VmmAction)"/> prefixes with the action's area
    /// (<see cref="FaultText"/>) unless <paramref name="bare"/> (a message Firecracker sends without one).</summary>
    private sealed class ApiFault(string message, int status = 400, bool bare = false) : Exception(message)
    {
        public int Status { get; } = status;
        public bool Bare { get; } = bare;
    }

    private ApiResponse Dispatch(VmmAction action)
    {
        switch (action)
        {
            case GetVmInstanceInfo: return ApiResponse.Ok(InstanceInfoJson());
            case GetVersion: return ApiResponse.Ok(JsonText.Serialize(w => { w.WriteStartObject(); w.WriteString("firecracker_version", VmmVersion); w.WriteEndObject(); }));
            case GetVmConfig: return ApiResponse.Ok(FullConfigJson.Write(_cfg));
            case GetMachineConfig:
            {
                var answer = ApiResponse.Ok(MachineConfigJson(_cfg.MachineConfig!));
                Published.MachineConfig = answer;
                return answer;
            }

            case PutBootSource b: SetBootSource(b.Config); return ApiResponse.NoContent;
            case PutDrive d:
                if (_vm != null) HotplugDrive(d.Config); else SetDrive(d.Config);
                return ApiResponse.NoContent;
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
                catch (ConfigException e) { throw new ApiFault(e.Message, bare: true); }
                _cfg.CpuConfig = c.Config;
                // Firecracker's set_custom_cpu_template: the custom template replaces a static one.
                if (_cfg.MachineConfig!.CpuTemplate is not null) _cfg.MachineConfig.CpuTemplate = null;
                return ApiResponse.NoContent;
            case PutNetworkInterface n:
                if (_vm != null) HotplugNet(n); else SetNet(n);
                return ApiResponse.NoContent;
            case PatchNetworkInterface pn:
                if (!(_cfg.NetworkInterfaces ?? []).Any(e => e.GetProperty("iface_id").GetString() == pn.IfaceId))
                    throw new ApiFault($"Invalid network interface ID - not found: {pn.IfaceId}.");
                Runtime(() => _vm!.PatchNetwork(pn.IfaceId, pn.RxRateLimiter, pn.TxRateLimiter), "Unable to patch the network interface");
                // Only a PATCH the device took changes the configuration (Firecracker's GET /vm/config reads it back).
                _cfg.NetworkInterfaces = RateLimiterPatch.ApplyToInterface(_cfg.NetworkInterfaces!, pn.IfaceId, pn.RxRateLimiter, pn.TxRateLimiter);
                return ApiResponse.NoContent;
            case PutVsock v: SetVsock(v); return ApiResponse.NoContent;
            case PutEntropy e: _cfg.Entropy = e.Config; return ApiResponse.NoContent;
            case PutPmem pp:
                if (_vm != null) HotplugPmem(pp.Config); else SetPmem(pp.Config);
                return ApiResponse.NoContent;
            case HotUnplugDevice u: HotUnplug(u); return ApiResponse.NoContent;
            case PatchPmem pp: UpdatePmem(pp); return ApiResponse.NoContent;

            case PutBalloon b:
                if (b.AmountMib > _cfg.MachineConfig!.MemSizeMib) throw new ApiFault("Amount of pages requested is too large.");
                if (_cfg.MachineConfig.HugePages == "2M") throw new ApiFault(ConfigLoader.BalloonWithHugePages);
                _cfg.Balloon = b.Config;
                return ApiResponse.NoContent;
            case GetBalloon:
                if (_cfg.Balloon is not { } bal || bal.ValueKind == JsonValueKind.Null) throw new ApiFault("No balloon device found.");
                return ApiResponse.Ok(_vm != null ? _vm.GetBalloonJson() : PreBootBalloonJson(bal));
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

            case StartBalloonHinting sh:
                BalloonDevice(() => _vm!.StartBalloonHinting(sh.AcknowledgeOnStop));
                return ApiResponse.NoContent;
            case GetBalloonHintingStatus:
            {
                string json = "";
                BalloonDevice(() => json = _vm!.GetBalloonHintingStatusJson());
                return ApiResponse.Ok(json);
            }
            case StopBalloonHinting:
                BalloonDevice(() => _vm!.StopBalloonHinting());
                return ApiResponse.NoContent;

            case PutMemoryHotplug mh:
                if (mh.Config.Error() is { } hpError) throw new ApiFault(hpError);
                _cfg.MemoryHotplug = mh.Config;
                return ApiResponse.NoContent;
            case PatchMemoryHotplug ph:
                MemoryHotplugDevice(() => _vm!.PatchMemoryHotplug(ph.RequestedSizeMib));
                return ApiResponse.NoContent;
            case GetMemoryHotplug:
            {
                string json = "";
                MemoryHotplugDevice(() => json = _vm!.GetMemoryHotplugJson(), deviceError: false);
                return ApiResponse.Ok(json);
            }

            case PutSerial ps:
                // Firecracker's ConfigureSerial only records the settings; the file is opened at InstanceStart.
                _cfg.SerialOutPath = ps.SerialOutPath;
                _cfg.SerialRateLimiter = ps.RateLimiter;
                return ApiResponse.NoContent;

            case PutMmds pm: RequireMmdsAfterStart(); Mmds(() => MmdsStore.Put(pm.Data)); return ApiResponse.NoContent;
            case PatchMmds pt: RequireMmdsAfterStart(); Mmds(() => MmdsStore.Patch(pt.Patch)); return ApiResponse.NoContent;
            case GetMmds: RequireMmdsAfterStart(); return ApiResponse.Ok(MmdsStore.GetJson());
            case PutMmdsConfig mc: SetMmdsConfig(mc); return ApiResponse.NoContent;

            case CreateSnapshot cs: return CreateSnapshotAction(cs);
            case LoadSnapshot ls: return LoadSnapshotAction(ls);
        }
        throw new ApiFault($"Unsupported action {action.GetType().Name}.", bare: true);
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
        // Firecracker's BootSourceConfigError texts; an empty path fails to open like any missing file.
        CheckOpen(b.KernelImagePath, false, e => $"The kernel file cannot be opened: {e}");
        if (b.InitrdPath != null) CheckOpen(b.InitrdPath, false, e => $"The initrd file cannot be opened due to invalid path or invalid permissions. {e}");
        if (b.BootArgs is { } args && System.Text.Encoding.UTF8.GetByteCount(args) >= 2048)
            throw new ApiFault("The kernel command line is invalid: it is longer than 2047 bytes.");
        _cfg.BootSource = b;
    }

    private void SetDrive(DriveConfig d)
    {
        if (d.IsRootDevice && _cfg.Pmem.Any(p => p.RootDevice))
            throw new ApiFault("Attempt to add block as a root device while the root device defined as a pmem device");
        if (d.IsRootDevice && _cfg.Drives.Any(x => x.IsRootDevice && x.DriveId != d.DriveId))
            throw new ApiFault("A root block device already exists!");
        var backend = DriveKind.Of(d);
        if (backend == DriveBackend.Invalid) throw new ApiFault(DriveKind.InvalidConfig);
        if (backend == DriveBackend.VhostUser)
        {
            // The backend is connected and negotiated with when the VM is built; here only its socket must exist, so a
            // mistyped path is refused now, in Firecracker's words.
            if (!File.Exists(d.Socket) && !Directory.Exists(d.Socket))
                throw new ApiFault("Unable to create the virtio block device: Vhost user backend error: Vhost-user error: " +
                    "Failed to connect to UDS Unix stream: No such file or directory (os error 2)");
            StoreDrive(d);
            return;
        }
        if (string.IsNullOrEmpty(d.PathOnHost)) throw new ApiFault($"Unable to create the block device: path_on_host is required for drive \"{d.DriveId}\".");
        CheckOpen(d.PathOnHost, d.IsReadOnly != true,
            e => $"Unable to create the virtio block device: Virtio backend error: Error manipulating the backing file: {e} {d.PathOnHost}");
        if (Config.IoEngineSupport.Refusal(d.IoEngine) is { } noAsync) throw new ApiFault(noAsync);
        StoreDrive(d);
    }

    private void StoreDrive(DriveConfig d)
    {
        var list = new List<DriveConfig>(_cfg.Drives);
        int i = list.FindIndex(x => x.DriveId == d.DriveId);
        if (i >= 0) list[i] = d; else list.Add(d);
        if (d.IsRootDevice) { list.Remove(d); list.Insert(0, d); } // Firecracker keeps the root device first
        _cfg.Drives = list;
    }

    /// <summary>
    /// A call on the running balloon, failing in Firecracker's words: VmmError::FindDeviceError when there is no
    /// balloon, VmmError::Balloon ("Balloon: " and the device's BalloonError text) when the device refuses.
    /// </summary>
    private void BalloonDevice(Action a)
    {
        if (_cfg.Balloon is not { ValueKind: not JsonValueKind.Null }) throw new ApiFault("Failed perform action on device: Device not found");
        try { a(); }
        catch (Exception e) when (IsRequestFailure(e)) { throw new ApiFault($"Balloon: {ErrorText(e)}"); }
    }

    /// <summary>
    /// A call on the running virtio-mem device, failing in Firecracker's words: VmmError::FindDeviceError without one; the device's VirtioMemError behind VmmError::VirtioMem's "Failed to create memory hotplug device: "
    /// (sic, Firecracker's Display for every VirtioMem error) when it refuses a PATCH.
    /// </summary>
    public const string MemoryDeviceNotFound = "Failed perform action on device: Device not found";

    private void MemoryHotplugDevice(Action a, bool deviceError = true)
    {
        if (_cfg.MemoryHotplug == null) throw new ApiFault(MemoryDeviceNotFound);
        try { a(); }
        catch (Exception e) when (IsRequestFailure(e))
        {
            throw new ApiFault(deviceError ? $"Failed to create memory hotplug device: {ErrorText(e)}" : ErrorText(e));
        }
    }

    /// <summary>GET /balloon before boot: Firecracker serialises its BalloonDeviceConfig, every field with its default
    /// filled in, whatever the PUT body left out or however it was spaced.</summary>
    private static string PreBootBalloonJson(JsonElement bal)
    {
        var b = DeviceConfigs.Balloon(bal);
        return new Flint.Devices.Virtio.Balloon.BalloonConfig(b.AmountMib, b.DeflateOnOom, b.StatsPollingIntervalS,
            b.FreePageHinting, b.FreePageReporting).ToJson();
    }

    private void RequireBalloon()
    {
        if (_cfg.Balloon is not { ValueKind: not JsonValueKind.Null }) throw new ApiFault("No balloon device found.");
    }

    private void UpdateDrive(PatchDrive p)
    {
        var d = _cfg.Drives.FirstOrDefault(x => x.DriveId == p.DriveId) ?? throw new ApiFault("Invalid block device ID!");
        // Firecracker reads a PATCH with neither field as a vhost-user config refresh, which a virtio drive refuses;
        // a vhost-user drive refuses the other two (its path and limits are the backend's).
        bool vhostUser = d.Socket != null;
        if (p.PathOnHost == null && p.RateLimiter is not { ValueKind: not JsonValueKind.Null })
        {
            if (!vhostUser) throw new ApiFault(DriveUpdateRules.NothingToUpdate);
            try { _vm!.RefreshVhostUserDrive(p.DriveId); }
            catch (Exception e) when (IsRequestFailure(e)) { throw new ApiFault($"Unable to patch the block device: {ErrorText(e)} Please verify the request arguments."); }
            return;
        }
        if (vhostUser) throw new ApiFault(DriveUpdateRules.NothingToUpdate);
        if (p.RateLimiter is { ValueKind: not JsonValueKind.Null } rl)
        {
            try { _vm!.PatchDriveRateLimiter(p.DriveId, rl); }
            catch (Exception e) when (IsRequestFailure(e)) { throw new ApiFault($"Unable to patch the block device: {ErrorText(e)} Please verify the request arguments."); }
            // Firecracker's RateLimiterUpdate: buckets the PATCH leaves out stay, size or refill_time 0 removes one.
            var merged = RateLimiterPatch.Merge(d.RateLimiter is { ValueKind: JsonValueKind.Object } cur ? JsonNode.Parse(cur.GetRawText()) : null, rl);
            d.RateLimiter = merged == null ? null : JsonDocument.Parse(merged.ToJsonString()).RootElement.Clone();
        }
        if (p.PathOnHost == null) return;
        CheckOpen(p.PathOnHost, d.IsReadOnly != true,
            e => $"Unable to patch the block device: Error manipulating the backing file: {e} {p.PathOnHost} Please verify the request arguments.");
        try { _vm!.PatchDrive(p.DriveId, p.PathOnHost); }
        catch (Exception e) when (IsRequestFailure(e)) { throw new ApiFault($"Unable to patch the block device: {ErrorText(e)} Please verify the request arguments."); }
        d.PathOnHost = p.PathOnHost;
    }

    /// <summary>
    /// Firecracker's insert_pmem_device (PmemBuilder::build): only the configuration is recorded; the backing file is
    /// opened and mapped at InstanceStart. A refused request leaves the list as it was.
    /// </summary>
    private void SetPmem(PmemConfig p)
    {
        try { DeviceConfigs.Limiter(p.RateLimiter, "rate_limiter"); }
        catch (ConfigException e) { throw new ApiFault(e.Message); }
        var list = new List<PmemConfig>(_cfg.Pmem);
        if (PmemRules.Insert(list, p, _cfg.Drives.Any(d => d.IsRootDevice)) is { } err) throw new ApiFault(err);
        _cfg.Pmem = list;
    }

    /// <summary>Firecracker's update_pmem_device: without a rate_limiter there is nothing to do (not even a lookup).</summary>
    private void UpdatePmem(PatchPmem p)
    {
        if (p.RateLimiter is not { ValueKind: not JsonValueKind.Null } rl) return;
        try { _vm!.PatchPmemRateLimiter(p.Id, rl); }
        catch (Exception e) when (IsRequestFailure(e)) { throw new ApiFault($"Unable to patch the pmem device: {ErrorText(e)} Please verify the request arguments."); }
        var d = _cfg.Pmem.FirstOrDefault(x => x.Id == p.Id);
        if (d == null) return;
        var merged = RateLimiterPatch.Merge(d.RateLimiter is { ValueKind: JsonValueKind.Object } cur ? JsonNode.Parse(cur.GetRawText()) : null, rl);
        d.RateLimiter = merged == null ? null : JsonDocument.Parse(merged.ToJsonString()).RootElement.Clone();
    }

    private void SetMachineConfig(MachineConfig m)
    {
        if (ConfigLoader.MachineConfigError(m) is { } invalid) throw new ApiFault(invalid);
        if (ConfigLoader.HugePagesError(m, ConfigLoader.Present(_cfg.Balloon) != null) is { } hp) throw new ApiFault(hp);
        if (ConfigLoader.CpuTemplateError(m.CpuTemplate) is { } ct) throw new ApiFault(ct);
        if (_cfg.Balloon is { } bal && bal.TryGetProperty("amount_mib", out var amt) && amt.GetInt64() > m.MemSizeMib)
            throw new ApiFault(ConfigLoader.IncompatibleBalloonSize);
        // Firecracker's MachineConfig::update: a cpu_template given ("None" included) replaces a custom template;
        // one not given keeps whichever template is set.
        if (m.CpuTemplate != null) _cfg.CpuConfig = null;
        else m.CpuTemplate = _cfg.MachineConfig?.CpuTemplate;
        _cfg.MachineConfig = m;
    }

    private void SetLogger(LoggerConfig l)
    {
        // Firecracker's LOGGER.update: PUT /logger may be sent again before the start; each one applies on top.
        try { ConfigureLogger(l); }
        catch (InvalidOperationException) { throw new ApiFault("Reinitialization of logger not allowed."); }
        catch (Exception e) when (IsRequestFailure(e)) { throw new ApiFault($"Failed to open target file: {ErrorText(e, l.LogPath)}"); }
        _cfg.Logger = l;
    }

    /// <summary>As Firecracker's Logger::update: an absent level means the default (Info), not "unchanged".</summary>
    private static void ApplyToProcessLogger(LoggerConfig l)
    {
        LogLevel level = LogLevel.Info;
        if (l.Level != null && LogLevels.TryParse(l.Level, out var lv)) level = lv;
        Logger.Update(l.LogPath, level, l.ShowLevel, l.ShowLogOrigin, l.Module);
    }

    private void SetMetrics(MetricsConfig m)
    {
        if (_cfg.Metrics != null) throw new ApiFault("Reinitialization of metrics not allowed.");
        try { ConfigureMetrics?.Invoke(m); }
        catch (ConfigException e) { throw new ApiFault(e.Message); }
        catch (Exception e) when (IsRequestFailure(e)) { throw new ApiFault($"Cannot initialize the metrics system due to bad user input: {ErrorText(e, m.MetricsPath)}"); }
        _cfg.Metrics = m;
    }

    private void Flush()
    {
        // Firecracker's METRICS.write(): with no metrics configured nothing is written and the answer is a 204.
        // The handler knows whether metrics were configured (here or by --metrics-path) and returns quietly if not.
        if (FlushMetricsHandler == null) return;
        // Firecracker: VmmActionError::InternalVmm(VmmError::Metrics(MetricsError::Write)), a 400 like its other errors.
        try { FlushMetricsHandler(); }
        catch (Exception e) when (IsRequestFailure(e)) { throw new ApiFault($"Metrics error: {ErrorText(e)}"); }
    }

    /// <summary>
    /// Firecracker's NetBuilder::build: a MAC another interface uses is refused; otherwise the interface is created,
    /// which opens its tap, so a host device that is not a TAP, is busy (another interface holds it) or has a bad name
    /// fails this request with Firecracker's text. Re-PUT with the same host device keeps the open tap (Firecracker
    /// closes it and opens it again). Deliberately kept different: Firecracker drops the interface being replaced
    /// before opening the new tap, so a failed replacement loses it; here a refused request changes nothing, as every
    /// other refused request (docs/compatibility.md, Behaviour).
    /// </summary>
    private void SetNet(PutNetworkInterface n)
    {
        var list = _cfg.NetworkInterfaces ?? [];
        foreach (var e in list)
        {
            string id = e.GetProperty("iface_id").GetString()!;
            if (id == n.IfaceId) continue;
            if (n.GuestMac != null && e.TryGetProperty("guest_mac", out var mac) && mac.ValueKind == JsonValueKind.String
                && string.Equals(mac.GetString(), n.GuestMac, StringComparison.OrdinalIgnoreCase))
                throw new ApiFault($"The MAC address is already in use: {n.GuestMac.ToLowerInvariant()}");
        }
        var copy = new List<JsonElement>(list);
        int i = copy.FindIndex(e => e.GetProperty("iface_id").GetString() == n.IfaceId);
        bool sameTap = i >= 0 && copy[i].GetProperty("host_dev_name").GetString() == n.HostDevName && Preopened.HasTap(n.IfaceId);
        if (!sameTap)
        {
            Flint.Devices.Virtio.Net.Tap tap;
            try { tap = Flint.Devices.Virtio.Net.TapOpener.Open(n.HostDevName); }
            catch (Flint.Devices.Virtio.Net.TapOpenException e) { throw new ApiFault(e.FirecrackerText); }
            Preopened.SetTap(n.IfaceId, tap); // closes the replaced interface's tap
        }
        if (i >= 0) copy[i] = n.Config; else copy.Add(n.Config);
        _cfg.NetworkInterfaces = copy;
    }

    /// <summary>
    /// Firecracker's VsockBuilder::insert binds the host socket at PUT: a path that cannot be bound (a missing
    /// directory, a file already there) is this request's 400. Re-PUT on the same path keeps the bound socket
    /// (Firecracker removes the file and binds again: the same result). Deliberately kept different: Firecracker drops
    /// the device being replaced before binding, so a failed replacement loses it; here a refused request changes
    /// nothing, and the replaced socket is closed (its file removed) only once the new one is bound.
    /// </summary>
    private void SetVsock(PutVsock v)
    {
        if (Preopened.Vsock is { } held && held.Path == v.UdsPath && ConfigLoader.Present(_cfg.Vsock) != null)
        {
            _cfg.Vsock = v.Config;
            return;
        }
        Flint.Devices.Virtio.Vsock.VsockListener listener;
        try { listener = Flint.Devices.Virtio.Vsock.VsockListener.Bind(v.UdsPath); }
        catch (Flint.Devices.Virtio.Vsock.VsockBindException e) { throw new ApiFault(e.FirecrackerText); }
        Preopened.SetVsock(listener); // closes the replaced socket and removes its file
        _cfg.Vsock = v.Config;
    }

    private void SetMmdsConfig(PutMmdsConfig c)
    {
        if (c.NetworkInterfaces.Count == 0)
            throw new ApiFault("The list of network interface IDs that allow forwarding MMDS requests is empty.");
        var known = (_cfg.NetworkInterfaces ?? []).Select(e => e.GetProperty("iface_id").GetString()).ToHashSet();
        if (c.NetworkInterfaces.Any(id => !known.Contains(id)))
            throw new ApiFault("The list of network interface IDs provided contains at least one ID that does not correspond to any existing network interface.");
        if (!IsLinkLocal(c.Ipv4Address))
            throw new ApiFault("The MMDS IPv4 address is not link local.");
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

    /// <summary>
    /// After the start Firecracker reaches the data store through the network devices that serve it: with no
    /// mmds-config there is none, and GET/PUT/PATCH /mmds answer 400 "not initialized" (before the start it makes a
    /// default store on first use, as Flint's always-present store behaves).
    /// </summary>
    private void RequireMmdsAfterStart()
    {
        if (_vm != null && ConfigLoader.Present(_cfg.MmdsConfig) == null)
            throw new ApiFault(MmdsNotInitialized);
    }

    public const string MmdsNotInitialized = "The MMDS data store is not initialized.";

    /// <summary>Runs a store operation, turning its errors (400, or 413 over the size limit) into API faults.</summary>
    private static void Mmds(Action op)
    {
        try { op(); }
        catch (Flint.Devices.Mmds.MmdsStoreException e) when (e.StatusCode == 413)
        {
            throw new ApiFault(FaultText.MmdsLimitExceededPrefix + "The MMDS patch request doesn't fit.", 413, bare: true);
        }
        catch (Flint.Devices.Mmds.MmdsStoreException e) { throw new ApiFault(e.Message, e.StatusCode); }
    }



    // ---- start and runtime ----

    private void Start()
    {
        if (_cfg.BootSource == null) throw new ApiFault("Cannot start microvm without kernel configuration.");
        try { ConfigLoader.Validate(_cfg); }
        catch (ConfigException e) { throw new ApiFault(e.Detail); }
        IRunningVm vm;
        try { vm = _startVm(_cfg); }
        catch (Exception e) when (IsRequestFailure(e)) { throw new ApiFault(FaultText.StartFailure(e)); }
        _vm = vm;
    }

    private static void Runtime(Action a, string what)
    {
        try { a(); }
        catch (Exception e) when (IsRequestFailure(e)) { throw new ApiFault($"{what}: {ErrorText(e)}"); }
    }

    /// <summary>An exception's text for a client: the OS's words (Rust io::Error style) for I/O and system-call
    /// failures, whose .NET messages must not reach a user; Flint's own message otherwise.</summary>
    private static string ErrorText(Exception e, string? path = null) => FaultText.Inner(e, path);

    /// <summary>Opens <paramref name="path"/> as the device will; on failure, the fault <paramref name="describe"/>
    /// words around the OS error text.</summary>
    private static void CheckOpen(string path, bool write, Func<string, string> describe)
    {
        try
        {
            using var f = new FileStream(path, FileMode.Open, write ? FileAccess.ReadWrite : FileAccess.Read, FileShare.ReadWrite);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            // A drive that is a directory gets advice after Firecracker's text; a kernel or initrd gets Firecracker's text.
            bool drive = describe("").Contains("block device", StringComparison.Ordinal);
            if (HostFileProblem.Directory(path, drive) is { } dir)
                throw new ApiFault(drive ? $"{describe(dir.OsError)} ({dir.Advice})" : describe(dir.OsError));
            throw new ApiFault(describe(path.Length == 0 ? "No such file or directory (os error 2)" : Flint.Vmm.IoErrorText.Of(e, path)));
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
        to.Pmem = [.. from.Pmem];
        to.MemoryHotplug = from.MemoryHotplug;
    }
}
