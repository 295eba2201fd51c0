using System.Text.Json;
using Flint.Vmm.Config;

namespace Flint.Vmm.Rpc;

/// <summary>
/// Firecracker's REST routing: (method, path, body) to a <see cref="VmmAction"/>, or an <see cref="ApiError"/> with
/// Firecracker's wording, through the one route table <see cref="ApiRoutes"/>. Pure: no state, no I/O; everything
/// that needs the VM's state is left to <see cref="VmmController"/>. Never throws. Routing the body-less GETs that
/// tools poll allocates nothing (shared immutable actions, span tokens).
/// </summary>
public static class ApiRequestParser
{
    public const int MaxIdLength = 64;

    private static readonly VmmAction InstanceInfo = new GetVmInstanceInfo(), Version = new GetVersion(),
        MachineCfg = new GetMachineConfig(), MmdsGet = new GetMmds(), Balloon = new GetBalloon(),
        BalloonStats = new GetBalloonStats(), VmConfig = new GetVmConfig(), BalloonHintingStatus = new GetBalloonHintingStatus(),
        StopHinting = new StopBalloonHinting(), StartHintingAck = new StartBalloonHinting(true),
        MemoryHotplugStatus = new GetMemoryHotplug();

    /// <summary>Firecracker's route table, in the order of the arms of its <c>ParsedRequest::try_from</c>.</summary>
    internal static ApiRoute[] BuildRoutes() =>
    [
        new(ApiMethod.Get, "", BodyRule.None, null, "instance_info", static (_, _) => InstanceInfo),
        new(ApiMethod.Get, "balloon", BodyRule.None, null, null, ParseGetBalloon),
        new(ApiMethod.Get, "version", BodyRule.None, null, "vmm_version", static (_, _) => Version),
        new(ApiMethod.Get, "vm", BodyRule.None, "config", null, static (_, _) => VmConfig),
        new(ApiMethod.Get, "machine-config", BodyRule.None, null, "machine_cfg", static (_, _) => MachineCfg),
        new(ApiMethod.Get, "mmds", BodyRule.None, null, "mmds", static (_, _) => MmdsGet),
        new(ApiMethod.Get, "hotplug", BodyRule.None, "memory", "hotplug_memory", static (_, _) => MemoryHotplugStatus),

        new(ApiMethod.Put, "actions", BodyRule.Required, null, "actions", static (b, _) => ParseAction(b!)),
        new(ApiMethod.Put, "balloon", BodyRule.Required, null, null, static (b, _) => ParsePutBalloon(b!)),
        new(ApiMethod.Put, "boot-source", BodyRule.Required, null, "boot_source", static (b, _) => ParseBootSource(b!)),
        new(ApiMethod.Put, "cpu-config", BodyRule.Required, null, "cpu_cfg", static (b, _) =>
        {
            var jb = JsonBody.Parse(b!, Schemas.CpuConfig);
            return new PutCpuConfig(jb.Element(jb.Root));
        }),
        new(ApiMethod.Put, "drives", BodyRule.Required, null, "drive", static (b, t) => ParsePutDrive(t.NextString(), b!)),
        new(ApiMethod.Put, "pmem", BodyRule.Required, null, "pmem", static (b, t) => ParsePutPmem(t.NextString(), b!)),
        new(ApiMethod.Put, "logger", BodyRule.Required, null, "logger", static (b, _) => ParseLogger(b!)),
        new(ApiMethod.Put, "serial", BodyRule.Required, null, "serial", static (b, _) => ParsePutSerial(b!)),
        new(ApiMethod.Put, "machine-config", BodyRule.Required, null, "machine_cfg", static (b, _) => ParsePutMachineConfig(b!)),
        new(ApiMethod.Put, "metrics", BodyRule.Required, null, "metrics", static (b, _) =>
        {
            var jb = JsonBody.Parse(b!, Schemas.Metrics);
            return new PutMetrics(new MetricsConfig { MetricsPath = JsonBody.Str(jb.Root, "metrics_path")!, EmitId = JsonBody.Bool(jb.Root, "emit_id"), Properties = JsonBody.StrMap(jb.Root, "properties") });
        }),
        new(ApiMethod.Put, "mmds", BodyRule.Required, null, "mmds", static (b, t) => ParsePutMmds(t, b!)),
        new(ApiMethod.Put, "network-interfaces", BodyRule.Required, null, "network", static (b, t) => ParsePutNet(t.NextString(), b!)),
        new(ApiMethod.Put, "snapshot", BodyRule.Required, null, null, static (b, t) => ParsePutSnapshot(t, b!)),
        new(ApiMethod.Put, "vsock", BodyRule.Required, null, "vsock", static (b, _) => ParseVsock(b!)),
        new(ApiMethod.Put, "entropy", BodyRule.Required, null, null, static (b, _) =>
        {
            var jb = JsonBody.Parse(b!, Schemas.Entropy);
            return new PutEntropy(jb.Element(jb.Root));
        }),
        new(ApiMethod.Put, "hotplug", BodyRule.Required, "memory", "hotplug_memory", static (b, _) => ParsePutMemoryHotplug(b!)),

        new(ApiMethod.Patch, "balloon", BodyRule.Any, null, null, ParsePatchBalloon),
        new(ApiMethod.Patch, "drives", BodyRule.Required, null, "drive", static (b, t) => ParsePatchDrive(t.NextString(), b!)),
        new(ApiMethod.Patch, "machine-config", BodyRule.Required, null, "machine_cfg", static (b, _) => ParsePatchMachineConfig(b!)),
        new(ApiMethod.Patch, "mmds", BodyRule.Required, null, "mmds", static (b, _) =>
        {
            var jb = JsonBody.Parse(b!, null);
            return new PatchMmds(jb.RawText(jb.Root));
        }),
        new(ApiMethod.Patch, "network-interfaces", BodyRule.Required, null, "network", static (b, t) => ParsePatchNet(t.NextString(), b!)),
        new(ApiMethod.Patch, "pmem", BodyRule.Required, null, "pmem", static (b, t) => ParsePatchPmem(t.NextString(), b!)),
        new(ApiMethod.Patch, "vm", BodyRule.Required, null, null, static (b, _) =>
        {
            var jb = JsonBody.Parse(b!, Schemas.Vm);
            return JsonBody.Str(jb.Root, "state") == "Paused" ? new Pause() : new Resume();
        }),
        new(ApiMethod.Patch, "hotplug", BodyRule.Required, "memory", "hotplug_memory", static (b, _) =>
        {
            var jb = JsonBody.Parse(b!, Schemas.MemoryHotplugSizeUpdate);
            return new PatchMemoryHotplug((uint)JsonBody.UInt(jb.Root, "requested_size_mib")!.Value);
        }),

        new(ApiMethod.Delete, "drives", BodyRule.None, null, null, static (_, t) => ParseUnplug(Hotplug.HotplugDeviceKind.Block, t.NextString())),
        new(ApiMethod.Delete, "pmem", BodyRule.None, null, null, static (_, t) => ParseUnplug(Hotplug.HotplugDeviceKind.Pmem, t.NextString())),
        new(ApiMethod.Delete, "network-interfaces", BodyRule.None, null, null, static (_, t) => ParseUnplug(Hotplug.HotplugDeviceKind.Net, t.NextString())),
    ];

    public static ParsedRequest Parse(string method, string path, string? body)
    {
        if (string.IsNullOrEmpty(body)) body = null;
        var tokens = new PathTokens(path);
        var first = tokens.Next(out var f) ? f : default;
        if (!ApiRoutes.TryParseMethod(method, out var m))
            return new ApiError($"Invalid request method and/or path: {method} {first}.");
        var peek = tokens;
        bool hasSecond = peek.Next(out var second);
        var route = ApiRoutes.Find(m, first, body != null, second, hasSecond);
        if (route == null) return Unrouted(m, first, body != null);
        ParsedRequest p;
        try
        {
            p = route.Parse(body, tokens);
        }
        catch (JsonBodyException e)
        {
            p = new ApiError(e.Message);
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or FormatException or OverflowException or InvalidOperationException or ArgumentException)
        {
            // Defensive: the schema check should have caught it; still a client error, never a crash.
            p = new ApiError(JsonBody.Prefix + FaultText.Inner(e) + ".");
        }
        return p with { Route = route };
    }

    /// <summary>Firecracker's fall-through arms: a body where none belongs, none where one must, or no such route.</summary>
    private static ApiError Unrouted(ApiMethod m, ReadOnlySpan<char> first, bool hasBody) => (m, hasBody) switch
    {
        (ApiMethod.Get, true) => GetWithBody,
        (ApiMethod.Put, false) => EmptyPut,
        (ApiMethod.Patch, false) => EmptyPatch,
        (ApiMethod.Delete, true) => new ApiError("Empty Delete request."),
        _ => InvalidPath(m, first),
    };

    private static readonly ApiError GetWithBody = new("GET request cannot have a body.");
    private static readonly ApiError EmptyPut = new("Empty PUT request.");
    private static readonly ApiError EmptyPatch = new("Empty PATCH request.");

    /// <summary>Firecracker's InvalidPathMethod: it names the first path token only (or the sub-path it was given).</summary>
    private static ApiError InvalidPath(ApiMethod m, ReadOnlySpan<char> what) =>
        new($"Invalid request method and/or path: {ApiRoutes.MethodName(m)} {what}.");

    /// <summary>Firecracker's parse_unplug_device: the id from the path, checked; the VMM decides the rest.</summary>
    private static ParsedRequest ParseUnplug(Hotplug.HotplugDeviceKind kind, string? id) =>
        BadId(id, out var err) ? err! : new HotUnplugDevice(kind, id);

    /// <summary>Firecracker's checked_id on an id from the path (plus Flint's length bound); null when it is valid.</summary>
    private static ApiError? CheckedId(string? id)
    {
        return CheckedIdCore(id);
    }

    /// <summary><see cref="CheckedId"/> for parsers that go on with the id: false (and a non-null id) when it is valid.</summary>
    private static bool BadId([System.Diagnostics.CodeAnalysis.NotNullWhen(false)] string? id, out ApiError? error)
    {
        error = CheckedIdCore(id);
        return error != null;
    }

    private static ApiError? CheckedIdCore(string? id)
    {
        if (string.IsNullOrEmpty(id)) return new ApiError("The ID cannot be empty.");
        if (!IsValidId(id))
            return new ApiError(id.Length > MaxIdLength
                ? $"The ID cannot be longer than {MaxIdLength} characters."
                : "API Resource IDs can only contain alphanumeric characters and underscores.");
        return null;
    }

    public static bool IsValidId(string id)
    {
        if (id.Length is 0 or > MaxIdLength) return false;
        foreach (char c in id) if (!(char.IsAsciiLetterOrDigit(c) || c == '_')) return false;
        return true;
    }

    private static readonly ApiError IdMismatch = new("The id from the path does not match the id from the body!");

    // request/net.rs words its mismatch with both ids.
    private static ApiError NetIdMismatch(string pathId, string? bodyId) =>
        new($"The id from the path [{pathId}] does not match the id from the body [{bodyId}]!");

    private static ParsedRequest ParseAction(string body)
    {
        var jb = JsonBody.Parse(body, Schemas.Action);
        return JsonBody.Str(jb.Root, "action_type") switch
        {
            "InstanceStart" => new StartMicroVm(),
            "SendCtrlAltDel" => new SendCtrlAltDel(),
            _ => new FlushMetrics(),
        };
    }

    private static ParsedRequest ParseBootSource(string body)
    {
        var o = JsonBody.Parse(body, Schemas.BootSource).Root;
        return new PutBootSource(new BootSourceConfig
        {
            KernelImagePath = JsonBody.Str(o, "kernel_image_path")!,
            BootArgs = JsonBody.Str(o, "boot_args"),
            InitrdPath = JsonBody.Str(o, "initrd_path"),
        });
    }

    private static ParsedRequest ParsePutDrive(string? id, string body)
    {
        if (BadId(id, out var err)) return err!;
        var jb = JsonBody.Parse(body, Schemas.Drive);
        var o = jb.Root;
        if (JsonBody.Str(o, "drive_id") != id) return IdMismatch;
        return new PutDrive(new DriveConfig
        {
            DriveId = id,
            PathOnHost = JsonBody.Str(o, "path_on_host"),
            IsRootDevice = JsonBody.Bool(o, "is_root_device")!.Value,
            IsReadOnly = JsonBody.Bool(o, "is_read_only"),
            PartUuid = JsonBody.Str(o, "partuuid"),
            CacheType = JsonBody.Str(o, "cache_type"),
            IoEngine = JsonBody.Str(o, "io_engine"),
            RateLimiter = o["rate_limiter"] is { } rl ? jb.Element(rl) : null,
            Socket = JsonBody.Str(o, "socket"),
        });
    }

    private static ParsedRequest ParsePatchDrive(string? id, string body)
    {
        if (BadId(id, out var err)) return err!;
        var jb = JsonBody.Parse(body, Schemas.PartialDrive);
        var o = jb.Root;
        if (JsonBody.Str(o, "drive_id") != id) return IdMismatch;
        return new PatchDrive(id, JsonBody.Str(o, "path_on_host"), o["rate_limiter"] is { } rl ? jb.Element(rl) : null);
    }

    /// <summary>request/pmem.rs parse_put_pmem: the path id checked, then the body, then the two ids compared.</summary>
    private static ParsedRequest ParsePutPmem(string? id, string body)
    {
        if (BadId(id, out var err)) return err!;
        var jb = JsonBody.Parse(body, Schemas.Pmem);
        var o = jb.Root;
        if (JsonBody.Str(o, "id") != id) return IdMismatch;
        return new PutPmem(new PmemConfig
        {
            Id = id,
            PathOnHost = JsonBody.Str(o, "path_on_host")!,
            RootDevice = JsonBody.Bool(o, "root_device") ?? false,
            ReadOnly = JsonBody.Bool(o, "read_only") ?? false,
            RateLimiter = o["rate_limiter"] is { } rl ? jb.Element(rl) : null,
        });
    }

    /// <summary>request/pmem.rs parse_patch_pmem.</summary>
    private static ParsedRequest ParsePatchPmem(string? id, string body)
    {
        if (BadId(id, out var err)) return err!;
        var jb = JsonBody.Parse(body, Schemas.PartialPmem);
        var o = jb.Root;
        if (JsonBody.Str(o, "id") != id) return IdMismatch;
        return new PatchPmem(id, o["rate_limiter"] is { } rl ? jb.Element(rl) : null);
    }

    private static ParsedRequest ParsePutMachineConfig(string body)
    {
        // Every client sends this one: the usual body is read without a JSON tree; anything else takes the general path.
        if (MachineConfigBody.TryRead(body, Schemas.CpuTemplates, Schemas.HugePages, out var f))
        {
            ParsedRequest read = new PutMachineConfig(new MachineConfig
            {
                VcpuCount = f.VcpuCount,
                MemSizeMib = f.MemSizeMib,
                Smt = f.Smt ?? false,
                TrackDirtyPages = f.TrackDirtyPages ?? false,
                HugePages = f.HugePages,
                CpuTemplate = f.CpuTemplate,
            });
            return f.CpuTemplate != null ? read with { Deprecation = Deprecations.PutMachineConfigCpuTemplate } : read;
        }
        var o = JsonBody.Parse(body, Schemas.MachineConfig).Root;
        ParsedRequest p = new PutMachineConfig(new MachineConfig
        {
            VcpuCount = (int)JsonBody.UInt(o, "vcpu_count")!.Value,
            MemSizeMib = checked((long)JsonBody.UInt(o, "mem_size_mib")!.Value),
            Smt = JsonBody.Bool(o, "smt") ?? false,
            TrackDirtyPages = JsonBody.Bool(o, "track_dirty_pages") ?? false,
            HugePages = JsonBody.Str(o, "huge_pages"),
            CpuTemplate = JsonBody.Str(o, "cpu_template"),
        });
        // request/machine_configuration.rs: any cpu_template, "None" included, is the deprecated field.
        return JsonBody.Str(o, "cpu_template") != null ? p with { Deprecation = Deprecations.PutMachineConfigCpuTemplate } : p;
    }

    private static ParsedRequest ParsePatchMachineConfig(string body)
    {
        var o = JsonBody.Parse(body, Schemas.MachineConfigUpdate).Root;
        var p = new PatchMachineConfig(
            (int?)JsonBody.UInt(o, "vcpu_count"),
            JsonBody.UInt(o, "mem_size_mib") is { } m ? checked((long)m) : null,
            JsonBody.Bool(o, "smt"), JsonBody.Bool(o, "track_dirty_pages"),
            JsonBody.Str(o, "huge_pages"), JsonBody.Str(o, "cpu_template"));
        if (p is { VcpuCount: null, MemSizeMib: null, Smt: null, TrackDirtyPages: null, HugePages: null, CpuTemplate: null })
            return EmptyPatch;
        return p.CpuTemplate != null ? new ParsedRequest(p, null) { Deprecation = Deprecations.PatchMachineConfigCpuTemplate } : p;
    }

    private static readonly string[] LogLevelNames = ["Error", "Warning", "Info", "Debug", "Trace", "Off"];

    private static ParsedRequest ParseLogger(string body)
    {
        var jb = JsonBody.Parse(body, Schemas.Logger);
        var o = jb.Root;
        string? level = JsonBody.Str(o, "level");
        if (level != null)
        {
            string? canonical = null;
            foreach (var n in LogLevelNames) if (string.Equals(n, level, StringComparison.OrdinalIgnoreCase)) canonical = n;
            if (canonical == null)
                throw jb.Error($"unknown variant `{level}`, {JsonBody.ExpectedList(LogLevelNames, "")}", o["level"]!.End);
            level = canonical;
        }
        return new PutLogger(new LoggerConfig
        {
            LogPath = JsonBody.Str(o, "log_path"),
            Level = level,
            ShowLevel = JsonBody.Bool(o, "show_level"),
            ShowLogOrigin = JsonBody.Bool(o, "show_log_origin"),
            Module = JsonBody.Str(o, "module"),
        });
    }

    private static ParsedRequest ParsePutNet(string? id, string body)
    {
        if (BadId(id, out var err)) return err!;
        var jb = JsonBody.Parse(body, Schemas.NetworkInterface);
        var o = jb.Root;
        if (JsonBody.Str(o, "iface_id") is var bodyId && bodyId != id) return NetIdMismatch(id!, bodyId);
        string? mac = JsonBody.Str(o, "guest_mac");
        if (mac != null && !IsMac(mac))
            throw jb.Error($"invalid value: string {JsonText.Quote(mac)}, expected a MAC address of the form xx:xx:xx:xx:xx:xx", o["guest_mac"]!.End);
        if (JsonBody.UInt(o, "mtu") is { } mtu && mtu < 68)
            throw jb.Error($"invalid value: integer `{mtu}`, expected an MTU between 68 and 65535", o["mtu"]!.End);
        return new PutNetworkInterface(id, JsonBody.Str(o, "host_dev_name")!, mac, jb.Element(o));
    }

    private static ParsedRequest ParsePatchNet(string? id, string body)
    {
        if (BadId(id, out var err)) return err!;
        var jb = JsonBody.Parse(body, Schemas.PartialNetworkInterface);
        var o = jb.Root;
        if (JsonBody.Str(o, "iface_id") is var bodyId && bodyId != id) return NetIdMismatch(id!, bodyId);
        return new PatchNetworkInterface(id, o["rx_rate_limiter"] is { } rx ? jb.Element(rx) : null, o["tx_rate_limiter"] is { } tx ? jb.Element(tx) : null);
    }

    private static bool IsMac(string s)
    {
        if (s.Length != 17) return false;
        for (int i = 0; i < 17; i++)
        {
            if (i % 3 == 2) { if (s[i] != ':') return false; }
            else if (!char.IsAsciiHexDigit(s[i])) return false;
        }
        return true;
    }

    private static ParsedRequest ParseVsock(string body)
    {
        var jb = JsonBody.Parse(body, Schemas.Vsock);
        var o = jb.Root;
        ulong cid = JsonBody.UInt(o, "guest_cid")!.Value;
        if (cid < 3) throw jb.Error($"invalid value: integer `{cid}`, expected a guest CID of at least 3", o["guest_cid"]!.End);
        ParsedRequest p = new PutVsock((uint)cid, JsonBody.Str(o, "uds_path")!, jb.Element(o));
        return JsonBody.Str(o, "vsock_id") != null ? p with { Deprecation = Deprecations.PutVsockId } : p;
    }

    private static ParsedRequest ParsePutBalloon(string body)
    {
        var jb = JsonBody.Parse(body, Schemas.Balloon);
        var o = jb.Root;
        return new PutBalloon((uint)JsonBody.UInt(o, "amount_mib")!.Value, JsonBody.Bool(o, "deflate_on_oom")!.Value,
            (ushort)(JsonBody.UInt(o, "stats_polling_interval_s") ?? 0), jb.Element(o));
    }

    /// <summary>
    /// request/hotplug/memory.rs parse_put_memory_hotplug: total_size_mib required, the other two defaulted (serde
    /// default, not Option: an explicit null is a type error), every size a u32. Validation is the VMM's.
    /// </summary>
    private static ParsedRequest ParsePutMemoryHotplug(string body)
    {
        var jb = JsonBody.Parse(body, Schemas.MemoryHotplug);
        var o = jb.Root;
        foreach (var (key, _, value) in o.Props!)
            if (value.Kind == JKind.Null && key is "block_size_mib" or "slot_size_mib")
                throw jb.Error("invalid type: null, expected u32", value.End);
        var cfg = new MemoryHotplugConfig { TotalSizeMib = (uint)JsonBody.UInt(o, "total_size_mib")!.Value };
        if (JsonBody.UInt(o, "block_size_mib") is { } block) cfg.BlockSizeMib = (uint)block;
        if (JsonBody.UInt(o, "slot_size_mib") is { } slot) cfg.SlotSizeMib = (uint)slot;
        return new PutMemoryHotplug(cfg);
    }

    /// <summary>request/serial.rs parse_put_serial: both fields optional, unknown ones refused (deny_unknown_fields).</summary>
    private static ParsedRequest ParsePutSerial(string body)
    {
        var jb = JsonBody.Parse(body, Schemas.Serial);
        var o = jb.Root;
        Flint.Devices.RateLimiting.TokenBucketConfig? rl = null;
        if (o["rate_limiter"] is { Kind: JKind.Object } r)
            rl = Flint.Devices.RateLimiting.RateLimiterJson.ParseBucket(jb.Element(r), "rate_limiter");
        return new PutSerial(JsonBody.Str(o, "serial_out_path"), rl);
    }

    /// <summary>request/balloon.rs parse_get_balloon.</summary>
    private static ParsedRequest ParseGetBalloon(string? body, PathTokens rest)
    {
        if (!rest.Next(out var sub)) return Balloon;
        if (sub.SequenceEqual("statistics")) return BalloonStats;
        if (sub.SequenceEqual("hinting"))
        {
            if (!rest.Next(out var h)) return new ApiError("Unrecognized GET request path `/hinting/`.");
            return h.SequenceEqual("status") ? BalloonHintingStatus : new ApiError($"Unrecognized GET request path `/hinting/{h}`.");
        }
        return new ApiError($"Unrecognized GET request path `{sub}`.");
    }

    /// <summary>request/balloon.rs parse_patch_balloon: any other sub-path with a body updates the balloon.</summary>
    private static ParsedRequest ParsePatchBalloon(string? body, PathTokens rest)
    {
        bool hasSub = rest.Next(out var sub);
        if (hasSub && sub.SequenceEqual("statistics") && body != null)
        {
            var jb = JsonBody.Parse(body, Schemas.BalloonStatsUpdate);
            return new PatchBalloonStatsInterval((ushort)JsonBody.UInt(jb.Root, "stats_polling_interval_s")!.Value);
        }
        if (hasSub && sub.SequenceEqual("hinting"))
        {
            if (!rest.Next(out var h)) return new ApiError("Unrecognized PATCH request path `/hinting/`.");
            if (h.SequenceEqual("stop")) return StopHinting; // any body is ignored, as Firecracker ignores it
            if (!h.SequenceEqual("start")) return new ApiError($"Unrecognized PATCH request path `/hinting/{h}`.");
            if (body == null) return StartHintingAck;
            var jb = JsonBody.Parse(body, Schemas.BalloonStartCmd);
            return new StartBalloonHinting(JsonBody.Bool(jb.Root, "acknowledge_on_stop") ?? true);
        }
        if (body == null) return EmptyPatch;
        var u = JsonBody.Parse(body, Schemas.BalloonUpdate);
        return new PatchBalloon((uint)JsonBody.UInt(u.Root, "amount_mib")!.Value);
    }

    /// <summary>request/mmds.rs parse_put_mmds: /mmds, /mmds/config, anything else refused by name.</summary>
    private static ParsedRequest ParsePutMmds(PathTokens rest, string body)
    {
        if (!rest.Next(out var sub))
        {
            var jb = JsonBody.Parse(body, null);
            return new PutMmds(jb.RawText(jb.Root));
        }
        if (sub.SequenceEqual("config")) return ParseMmdsConfig(body);
        return new ApiError($"Unrecognized PUT request path `{sub}`.");
    }

    private static ParsedRequest ParseMmdsConfig(string body)
    {
        var jb = JsonBody.Parse(body, Schemas.MmdsConfig);
        var o = jb.Root;
        var ifaces = o["network_interfaces"]!.Items!.Select(i => i.Text!).ToList();
        string ip = JsonBody.Str(o, "ipv4_address") ?? "169.254.169.254";
        string version = JsonBody.Str(o, "version") ?? "V1";
        ParsedRequest p = new PutMmdsConfig(version, ifaces, ip, jb.Element(o));
        // request/mmds.rs: V1, the default when "version" is absent, is deprecated.
        return version == "V1" ? p with { Deprecation = Deprecations.PutMmdsConfigV1 } : p;
    }

    /// <summary>request/snapshot.rs parse_put_snapshot.</summary>
    private static ParsedRequest ParsePutSnapshot(PathTokens rest, string body)
    {
        if (!rest.Next(out var op)) return new ApiError("Missing snapshot operation type.");
        if (op.SequenceEqual("create"))
        {
            var jb = JsonBody.Parse(body, Schemas.SnapshotCreate);
            var o = jb.Root;
            return new CreateSnapshot(JsonBody.Str(o, "snapshot_path")!, JsonBody.Str(o, "mem_file_path")!, JsonBody.Str(o, "snapshot_type") ?? "Full");
        }
        if (op.SequenceEqual("load"))
        {
            var jb = JsonBody.Parse(body, Schemas.SnapshotLoad);
            var o = jb.Root;
            bool file = o["mem_file_path"] != null, backend = o["mem_backend"] != null;
            if (file && backend) throw jb.Error("too many fields: either `mem_backend` or `mem_file_path` exclusively is required", o.End);
            if (!file && !backend) throw jb.Error("missing field: either `mem_backend` or `mem_file_path` is required", o.End);
            ParsedRequest p = new LoadSnapshot(JsonBody.Str(o, "snapshot_path")!, jb.Element(o));
            bool deprecated = JsonBody.Str(o, "mem_file_path") != null || JsonBody.Bool(o, "enable_diff_snapshots") == true;
            return deprecated ? p with { Deprecation = Deprecations.PutSnapshotLoadMemFile } : p;
        }
        return InvalidPath(ApiMethod.Put, $"/snapshot/{op}");
    }
}
