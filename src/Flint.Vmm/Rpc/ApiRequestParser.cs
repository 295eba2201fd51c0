using System.Text.Json;
using Flint.Vmm.Config;

namespace Flint.Vmm.Rpc;

/// <summary>
/// Firecracker's REST routing: (method, path, body) to a <see cref="VmmAction"/>, or an <see cref="ApiError"/> with
/// Firecracker's wording. Pure: no state, no I/O; everything that needs the VM's state is left to
/// <see cref="VmmController"/>. Never throws.
/// </summary>
public static class ApiRequestParser
{
    public const int MaxIdLength = 64;

    /// <summary>
    /// The body-less GETs that tools poll (GET / above all), answered from shared immutable actions so that routing
    /// them allocates nothing. Same results as the general router, including its one-trailing-slash rule.
    /// </summary>
    private static readonly Dictionary<string, VmmAction> SimpleGets = BuildSimpleGets();

    private static Dictionary<string, VmmAction> BuildSimpleGets()
    {
        var d = new Dictionary<string, VmmAction>(StringComparer.Ordinal);
        void Add(string p, VmmAction a) { d[p] = a; if (p != "/") d[p + "/"] = a; }
        Add("/", new GetVmInstanceInfo());
        Add("/version", new GetVersion());
        Add("/machine-config", new GetMachineConfig());
        Add("/mmds", new GetMmds());
        Add("/balloon", new GetBalloon());
        Add("/balloon/statistics", new GetBalloonStats());
        Add("/vm/config", new GetVmConfig());
        return d;
    }

    public static ParsedRequest Parse(string method, string path, string? body)
    {
        if (method == "GET" && string.IsNullOrEmpty(body) && SimpleGets.TryGetValue(path, out var simple)) return simple;
        try
        {
            return Route(method, path, string.IsNullOrEmpty(body) ? null : body);
        }
        catch (JsonBodyException e)
        {
            return new ApiError(e.Message);
        }
        catch (Exception e) when (e is JsonException or FormatException or OverflowException or InvalidOperationException or ArgumentException)
        {
            // Defensive: the schema check should have caught it; still a client error, never a crash.
            return new ApiError(JsonBody.Prefix + FaultText.Inner(e) + ".");
        }
    }

    private static ParsedRequest Route(string method, string path, string? body)
    {
        // Firecracker splits the path on '/' (a single trailing '/' is ignored) and routes on the first segment.
        var tokens = Tokens(path);
        string first = tokens.Count > 0 ? tokens[0] : "";
        string? second = tokens.Count > 1 ? tokens[1] : null;
        int extra = tokens.Count;

        switch (method)
        {
            case "GET":
                if (body != null)
                    return new ApiError("GET request cannot have a body.");
                switch (first)
                {
                    case "" when extra == 0: return new GetVmInstanceInfo();
                    case "version" when extra == 1: return new GetVersion();
                    case "machine-config" when extra == 1: return new GetMachineConfig();
                    case "mmds" when extra == 1: return new GetMmds();
                    case "balloon" when extra == 1: return new GetBalloon();
                    case "balloon" when extra == 2 && second == "statistics": return new GetBalloonStats();
                    case "vm" when extra == 2 && second == "config": return new GetVmConfig();
                }
                return InvalidPath(method, path);

            case "PUT":
                if (body == null) return new ApiError("Empty PUT request.");
                switch (first)
                {
                    case "actions" when extra == 1: return ParseAction(body);
                    case "boot-source" when extra == 1: return ParseBootSource(body);
                    case "drives": return ParsePutDrive(method, path, tokens, body);
                    case "machine-config" when extra == 1: return ParsePutMachineConfig(body);
                    case "logger" when extra == 1: return ParseLogger(body);
                    case "metrics" when extra == 1:
                    {
                        var jb = JsonBody.Parse(body, Schemas.Metrics);
                        return new PutMetrics(new MetricsConfig { MetricsPath = JsonBody.Str(jb.Root, "metrics_path")! });
                    }
                    case "cpu-config" when extra == 1:
                    {
                        var jb = JsonBody.Parse(body, Schemas.CpuConfig);
                        return new PutCpuConfig(jb.Element(jb.Root));
                    }
                    case "network-interfaces": return ParsePutNet(method, path, tokens, body);
                    case "vsock" when extra == 1: return ParseVsock(body);
                    case "entropy" when extra == 1:
                    {
                        var jb = JsonBody.Parse(body, Schemas.Entropy);
                        return new PutEntropy(jb.Element(jb.Root));
                    }
                    case "balloon" when extra == 1: return ParsePutBalloon(body);
                    case "mmds" when extra == 1:
                    {
                        var jb = JsonBody.Parse(body, null);
                        return new PutMmds(jb.RawText(jb.Root));
                    }
                    case "mmds" when extra == 2 && second == "config": return ParseMmdsConfig(body);
                    case "snapshot" when extra == 2 && second == "create":
                    {
                        var jb = JsonBody.Parse(body, Schemas.SnapshotCreate);
                        var o = jb.Root;
                        return new CreateSnapshot(JsonBody.Str(o, "snapshot_path")!, JsonBody.Str(o, "mem_file_path")!, JsonBody.Str(o, "snapshot_type") ?? "Full");
                    }
                    case "snapshot" when extra == 2 && second == "load":
                    {
                        var jb = JsonBody.Parse(body, Schemas.SnapshotLoad);
                        var o = jb.Root;
                        bool file = o["mem_file_path"] != null, backend = o["mem_backend"] != null;
                        if (file && backend) throw jb.Error("too many fields: either `mem_backend` or `mem_file_path` exclusively is required", o.End);
                        if (!file && !backend) throw jb.Error("missing field: either `mem_backend` or `mem_file_path` is required", o.End);
                        return new LoadSnapshot(JsonBody.Str(o, "snapshot_path")!, jb.Element(o));
                    }
                }
                return InvalidPath(method, path);

            case "PATCH":
                if (body == null) return new ApiError("Empty PATCH request.");
                switch (first)
                {
                    case "drives": return ParsePatchDrive(method, path, tokens, body);
                    case "machine-config" when extra == 1: return ParsePatchMachineConfig(body);
                    case "network-interfaces": return ParsePatchNet(method, path, tokens, body);
                    case "vm" when extra == 1:
                    {
                        var jb = JsonBody.Parse(body, Schemas.Vm);
                        return JsonBody.Str(jb.Root, "state") == "Paused" ? new Pause() : new Resume();
                    }
                    case "balloon" when extra == 1:
                    {
                        var jb = JsonBody.Parse(body, Schemas.BalloonUpdate);
                        return new PatchBalloon((uint)JsonBody.UInt(jb.Root, "amount_mib")!.Value);
                    }
                    case "balloon" when extra == 2 && second == "statistics":
                    {
                        var jb = JsonBody.Parse(body, Schemas.BalloonStatsUpdate);
                        return new PatchBalloonStatsInterval((ushort)JsonBody.UInt(jb.Root, "stats_polling_interval_s")!.Value);
                    }
                    case "mmds" when extra == 1:
                    {
                        var jb = JsonBody.Parse(body, null);
                        return new PatchMmds(jb.RawText(jb.Root));
                    }
                }
                return InvalidPath(method, path);
        }
        return InvalidPath(method, path);
    }

    // Like Firecracker, "GET request cannot have a body." / "Empty PUT request." come before the path is looked at.
    private static ApiError InvalidPath(string method, string path) => new($"Invalid request method and/or path: {method} {path}.");

    private static List<string> Tokens(string path)
    {
        var t = new List<string>(path.Split('/'));
        if (t.Count > 0) t.RemoveAt(0);                 // the part before the leading '/'
        if (t.Count > 0 && t[^1].Length == 0) t.RemoveAt(t.Count - 1); // one trailing '/'
        return t;
    }

    /// <summary>The id segment of /drives/{id} and /network-interfaces/{id}; null with an error when it is not valid.</summary>
    private static string? PathId(string method, string path, List<string> tokens, out ApiError? error)
    {
        error = null;
        if (tokens.Count > 2) { error = InvalidPath(method, path); return null; }
        if (tokens.Count < 2 || tokens[1].Length == 0) { error = new ApiError("The ID cannot be empty."); return null; }
        string id = tokens[1];
        if (!IsValidId(id))
        {
            error = new ApiError(id.Length > MaxIdLength
                ? $"The ID cannot be longer than {MaxIdLength} characters."
                : "API Resource IDs can only contain alphanumeric characters and underscores.");
            return null;
        }
        return id;
    }

    public static bool IsValidId(string id)
    {
        if (id.Length is 0 or > MaxIdLength) return false;
        foreach (char c in id) if (!(char.IsAsciiLetterOrDigit(c) || c == '_')) return false;
        return true;
    }

    private static readonly ApiError IdMismatch = new("The id from the path does not match the id from the body!");

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

    private static ParsedRequest ParsePutDrive(string method, string path, List<string> tokens, string body)
    {
        string? id = PathId(method, path, tokens, out var err);
        if (id == null) return err!;
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

    private static ParsedRequest ParsePatchDrive(string method, string path, List<string> tokens, string body)
    {
        string? id = PathId(method, path, tokens, out var err);
        if (id == null) return err!;
        var jb = JsonBody.Parse(body, Schemas.PartialDrive);
        var o = jb.Root;
        if (JsonBody.Str(o, "drive_id") != id) return IdMismatch;
        return new PatchDrive(id, JsonBody.Str(o, "path_on_host"), o["rate_limiter"] is { } rl ? jb.Element(rl) : null);
    }

    private static ParsedRequest ParsePutMachineConfig(string body)
    {
        var o = JsonBody.Parse(body, Schemas.MachineConfig).Root;
        return new PutMachineConfig(new MachineConfig
        {
            VcpuCount = (int)JsonBody.UInt(o, "vcpu_count")!.Value,
            MemSizeMib = checked((long)JsonBody.UInt(o, "mem_size_mib")!.Value),
            Smt = JsonBody.Bool(o, "smt") ?? false,
            TrackDirtyPages = JsonBody.Bool(o, "track_dirty_pages") ?? false,
            HugePages = JsonBody.Str(o, "huge_pages"),
            CpuTemplate = JsonBody.Str(o, "cpu_template"),
        });
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
            return new ApiError("Empty PATCH request.");
        return p;
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

    private static ParsedRequest ParsePutNet(string method, string path, List<string> tokens, string body)
    {
        string? id = PathId(method, path, tokens, out var err);
        if (id == null) return err!;
        var jb = JsonBody.Parse(body, Schemas.NetworkInterface);
        var o = jb.Root;
        if (JsonBody.Str(o, "iface_id") != id) return IdMismatch;
        string? mac = JsonBody.Str(o, "guest_mac");
        if (mac != null && !IsMac(mac))
            throw jb.Error($"invalid value: string {JsonText.Quote(mac)}, expected a MAC address of the form xx:xx:xx:xx:xx:xx", o["guest_mac"]!.End);
        if (JsonBody.UInt(o, "mtu") is { } mtu && mtu < 68)
            throw jb.Error($"invalid value: integer `{mtu}`, expected an MTU between 68 and 65535", o["mtu"]!.End);
        return new PutNetworkInterface(id, JsonBody.Str(o, "host_dev_name")!, mac, jb.Element(o));
    }

    private static ParsedRequest ParsePatchNet(string method, string path, List<string> tokens, string body)
    {
        string? id = PathId(method, path, tokens, out var err);
        if (id == null) return err!;
        var jb = JsonBody.Parse(body, Schemas.PartialNetworkInterface);
        var o = jb.Root;
        if (JsonBody.Str(o, "iface_id") != id) return IdMismatch;
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
        return new PutVsock((uint)cid, JsonBody.Str(o, "uds_path")!, jb.Element(o));
    }

    private static ParsedRequest ParsePutBalloon(string body)
    {
        var jb = JsonBody.Parse(body, Schemas.Balloon);
        var o = jb.Root;
        return new PutBalloon((uint)JsonBody.UInt(o, "amount_mib")!.Value, JsonBody.Bool(o, "deflate_on_oom")!.Value,
            (ushort)(JsonBody.UInt(o, "stats_polling_interval_s") ?? 0), jb.Element(o));
    }

    private static ParsedRequest ParseMmdsConfig(string body)
    {
        var jb = JsonBody.Parse(body, Schemas.MmdsConfig);
        var o = jb.Root;
        var ifaces = o["network_interfaces"]!.Items!.Select(i => i.Text!).ToList();
        string ip = JsonBody.Str(o, "ipv4_address") ?? "169.254.169.254";
        return new PutMmdsConfig(JsonBody.Str(o, "version") ?? "V1", ifaces, ip, jb.Element(o));
    }
}
