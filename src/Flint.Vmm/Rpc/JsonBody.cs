using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Flint.Vmm.Rpc;

/// <summary>A request body that does not fit its schema; the message names the field and the line/column, serde style.</summary>
public sealed class JsonBodyException(string message) : Exception(message);

internal enum JKind { Object, Array, String, Number, True, False, Null }

/// <summary>A parsed JSON value with the byte offset just past it (for serde-style positions).</summary>
internal sealed class JNode
{
    public JKind Kind;
    public int Start, End;
    public string? Text; // string value, or the raw number
    public List<(string Key, int KeyEnd, JNode Value)>? Props;
    public List<JNode>? Items;

    public JNode? this[string key]
    {
        get
        {
            if (Props == null) return null;
            foreach (var p in Props) if (p.Key == key) return p.Value.Kind == JKind.Null ? null : p.Value;
            return null;
        }
    }
}

internal enum FieldKind { String, Bool, U8, U16, U32, U64, I32, Usize, Enum, Struct, StructArray, StringArray, StringMap, Any }

internal sealed record Field(string Name, FieldKind Kind, bool Required = false, StructSchema? Nested = null, string[]? Variants = null);

internal sealed record StructSchema(string Name, params Field[] Fields)
{
    /// <summary>serde's default for a struct without deny_unknown_fields (Firecracker's top-level VmmConfig): unknown keys are skipped.</summary>
    public bool IgnoreUnknown { get; init; }
}

/// <summary>
/// Body parsing for the API: a small JSON tree over <see cref="Utf8JsonReader"/> with byte positions, checked
/// against a schema in document order so the first error is the one serde would report, worded like serde's.
/// </summary>
internal sealed class JsonBody
{
    public const string Prefix = "An error occurred when deserializing the json body of a request: ";

    private readonly byte[] _bytes;
    public string Source { get; }
    public JNode Root { get; }

    private readonly string _prefix;

    private JsonBody(string source, byte[] bytes, JNode root, string prefix) { Source = source; _bytes = bytes; Root = root; _prefix = prefix; }

    /// <summary>Parses <paramref name="body"/> and checks it against <paramref name="schema"/> (null: any JSON).</summary>
    /// <param name="prefix">What precedes serde's text: the API's sentence, or the config file's "Invalid JSON: ".</param>
    public static JsonBody Parse(string body, StructSchema? schema, string prefix = Prefix)
    {
        var bytes = Encoding.UTF8.GetBytes(body);
        // serde_json's wording and position for the first syntax error; the reader below then only sees valid JSON.
        if (SerdeJsonSyntax.FirstError(bytes) is { } syntax) throw new JsonBodyException(prefix + syntax + ".");
        JNode root;
        var reader = new Utf8JsonReader(bytes, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Disallow, MaxDepth = SerdeJsonSyntax.MaxDepth + 1 });
        try
        {
            reader.Read();
            root = ReadValue(ref reader, bytes);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or ArgumentException)
        {
            // Defensive: the syntax check accepts only what the reader accepts. Never the reader's own (.NET) text.
            throw new JsonBodyException(prefix + SerdeJsonSyntax.At(bytes, "expected value", (int)reader.BytesConsumed + 1) + ".");
        }
        var jb = new JsonBody(body, bytes, root, prefix);
        if (schema != null) jb.CheckStruct(root, schema);
        return jb;
    }

    private static JNode ReadValue(ref Utf8JsonReader r, byte[] bytes)
    {
        var n = new JNode { Start = (int)r.TokenStartIndex };
        switch (r.TokenType)
        {
            case JsonTokenType.StartObject:
                n.Kind = JKind.Object;
                n.Props = [];
                while (r.Read() && r.TokenType != JsonTokenType.EndObject)
                {
                    string key = r.GetString()!;
                    int keyEnd = (int)r.BytesConsumed;
                    while (keyEnd > 0 && bytes[keyEnd - 1] is (byte)':' or (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n') keyEnd--;
                    r.Read();
                    n.Props.Add((key, keyEnd, ReadValue(ref r, bytes)));
                }
                break;
            case JsonTokenType.StartArray:
                n.Kind = JKind.Array;
                n.Items = [];
                while (r.Read() && r.TokenType != JsonTokenType.EndArray) n.Items.Add(ReadValue(ref r, bytes));
                break;
            case JsonTokenType.String: n.Kind = JKind.String; n.Text = r.GetString(); break;
            case JsonTokenType.Number: n.Kind = JKind.Number; n.Text = Encoding.UTF8.GetString(r.ValueSpan); break;
            case JsonTokenType.True: n.Kind = JKind.True; break;
            case JsonTokenType.False: n.Kind = JKind.False; break;
            default: n.Kind = JKind.Null; break;
        }
        n.End = (int)r.BytesConsumed;
        return n;
    }

    /// <summary>" at line L column C" for the byte just before <paramref name="end"/> (serde reports the last byte read).</summary>
    private static string At(byte[] bytes, int end)
    {
        int idx = Math.Max(0, Math.Min(end, bytes.Length) - 1);
        int line = 1, lineStart = 0;
        for (int i = 0; i < idx; i++) if (bytes[i] == '\n') { line++; lineStart = i + 1; }
        int col = bytes.Length == 0 ? 0 : idx - lineStart + 1;
        return $" at line {line} column {col}";
    }

    public JsonBodyException Error(string message, int end) => new(_prefix + message + At(_bytes, end) + ".");

    /// <summary>The node's JSON text as a detached element (for storing device sections verbatim).</summary>
    public JsonElement Element(JNode n)
    {
        using var doc = JsonDocument.Parse(_bytes.AsMemory(n.Start, n.End - n.Start));
        return doc.RootElement.Clone();
    }

    public string RawText(JNode n) => Encoding.UTF8.GetString(_bytes, n.Start, n.End - n.Start);

    // ---- schema checks ----

    private void CheckStruct(JNode n, StructSchema s)
    {
        if (n.Kind != JKind.Object) throw Error($"invalid type: {Unexpected(n)}, expected struct {s.Name}", n.End);
        var seen = new HashSet<string>();
        foreach (var (key, keyEnd, value) in n.Props!)
        {
            Field? f = null;
            foreach (var x in s.Fields) if (x.Name == key) { f = x; break; }
            if (f == null && s.IgnoreUnknown) continue;
            if (f == null) throw Error($"unknown field `{key}`, {ExpectedList(s.Fields.Select(x => x.Name).ToArray(), "there are no fields")}", keyEnd);
            if (!seen.Add(key)) throw Error($"duplicate field `{key}`", keyEnd);
            if (value.Kind == JKind.Null && !f.Required && f.Kind != FieldKind.Any) continue; // Option<T>: null is None
            CheckValue(value, f);
        }
        foreach (var f in s.Fields)
            if (f.Required && !seen.Contains(f.Name)) throw Error($"missing field `{f.Name}`", n.End);
    }

    private void CheckValue(JNode v, Field f)
    {
        switch (f.Kind)
        {
            case FieldKind.Any: return;
            case FieldKind.String:
                if (v.Kind != JKind.String) throw Error($"invalid type: {Unexpected(v)}, expected a string", v.End);
                return;
            case FieldKind.Bool:
                if (v.Kind is not (JKind.True or JKind.False)) throw Error($"invalid type: {Unexpected(v)}, expected a boolean", v.End);
                return;
            case FieldKind.U8: CheckInt(v, "u8", 0, byte.MaxValue); return;
            case FieldKind.U16: CheckInt(v, "u16", 0, ushort.MaxValue); return;
            case FieldKind.U32: CheckInt(v, "u32", 0, uint.MaxValue); return;
            case FieldKind.I32: CheckInt(v, "i32", int.MinValue, int.MaxValue); return;
            case FieldKind.U64: CheckInt(v, "u64", 0, null); return;
            case FieldKind.Usize: CheckInt(v, "usize", 0, null); return;
            case FieldKind.Enum:
                if (v.Kind != JKind.String) throw Error($"invalid type: {Unexpected(v)}, expected variant identifier", v.End);
                if (Array.IndexOf(f.Variants!, v.Text) < 0)
                    throw Error($"unknown variant `{v.Text}`, {ExpectedList(f.Variants!, "there are no variants")}", v.End);
                return;
            case FieldKind.Struct: CheckStruct(v, f.Nested!); return;
            case FieldKind.StructArray:
                if (v.Kind != JKind.Array) throw Error($"invalid type: {Unexpected(v)}, expected a sequence", v.End);
                foreach (var item in v.Items!) CheckStruct(item, f.Nested!);
                return;
            case FieldKind.StringMap: // serde's BTreeMap<String, String>
                if (v.Kind != JKind.Object) throw Error($"invalid type: {Unexpected(v)}, expected a map", v.End);
                foreach (var (_, _, item) in v.Props!)
                    if (item.Kind != JKind.String) throw Error($"invalid type: {Unexpected(item)}, expected a string", item.End);
                return;
            case FieldKind.StringArray:
                if (v.Kind != JKind.Array) throw Error($"invalid type: {Unexpected(v)}, expected a sequence", v.End);
                foreach (var item in v.Items!)
                    if (item.Kind != JKind.String) throw Error($"invalid type: {Unexpected(item)}, expected a string", item.End);
                return;
        }
    }

    private void CheckInt(JNode v, string type, long min, long? max)
    {
        if (v.Kind != JKind.Number) throw Error($"invalid type: {Unexpected(v)}, expected {type}", v.End);
        string t = v.Text!;
        if (t.AsSpan().IndexOfAny('.', 'e', 'E') >= 0) throw Error($"invalid type: floating point `{t}`, expected {type}", v.End);
        if (t.StartsWith('-'))
        {
            if (!long.TryParse(t, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long neg))
                throw Error($"invalid type: floating point `{t}`, expected {type}", v.End);
            if (neg < min) throw Error($"invalid value: integer `{t}`, expected {type}", v.End);
            return;
        }
        if (!ulong.TryParse(t, NumberStyles.None, CultureInfo.InvariantCulture, out ulong pos))
            throw Error($"invalid type: floating point `{t}`, expected {type}", v.End);
        if (max.HasValue && pos > (ulong)max.Value) throw Error($"invalid value: integer `{t}`, expected {type}", v.End);
    }

    internal static string Unexpected(JNode v) => v.Kind switch
    {
        JKind.Object => "map",
        JKind.Array => "sequence",
        JKind.String => $"string {JsonText.Quote(v.Text!)}",
        JKind.True => "boolean `true`",
        JKind.False => "boolean `false`",
        JKind.Null => "null",
        _ => v.Text!.AsSpan().IndexOfAny('.', 'e', 'E') >= 0 ? $"floating point `{v.Text}`" : $"integer `{v.Text}`",
    };

    internal static string ExpectedList(string[] names, string none) => names.Length switch
    {
        0 => none,
        1 => $"expected `{names[0]}`",
        2 => $"expected `{names[0]}` or `{names[1]}`",
        _ => "expected one of " + string.Join(", ", names.Select(n => $"`{n}`")),
    };

    // ---- typed reads (after the schema check) ----

    public static string? Str(JNode o, string k) => o[k]?.Text;
    public static bool? Bool(JNode o, string k) => o[k] is { } n ? n.Kind == JKind.True : null;
    public static ulong? UInt(JNode o, string k) => o[k] is { } n ? ulong.Parse(n.Text!, CultureInfo.InvariantCulture) : null;
    public static long? Int(JNode o, string k) => o[k] is { } n ? long.Parse(n.Text!, CultureInfo.InvariantCulture) : null;

    /// <summary>A string map (checked as <see cref="FieldKind.StringMap"/>), or null when absent or null.</summary>
    public static Dictionary<string, string>? StrMap(JNode o, string k)
    {
        if (o[k] is not { Kind: JKind.Object } n) return null;
        var d = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, _, v) in n.Props!) d[key] = v.Text!;
        return d;
    }
}

/// <summary>Firecracker's request body shapes (swagger definitions), field order as there.</summary>
internal static class Schemas
{
    private static Field S(string n, bool req = false) => new(n, FieldKind.String, req);
    private static Field B(string n, bool req = false) => new(n, FieldKind.Bool, req);
    private static Field K(string n, FieldKind k, bool req = false) => new(n, k, req);
    private static Field E(string n, bool req, params string[] v) => new(n, FieldKind.Enum, req, Variants: v);
    private static Field St(string n, StructSchema s, bool req = false) => new(n, FieldKind.Struct, req, s);
    private static Field Arr(string n, StructSchema s, bool req = false) => new(n, FieldKind.StructArray, req, s);

    public static readonly StructSchema TokenBucket = new("TokenBucketConfig", K("size", FieldKind.U64, true), K("one_time_burst", FieldKind.U64), K("refill_time", FieldKind.U64, true));
    public static readonly StructSchema RateLimiter = new("RateLimiterConfig", St("bandwidth", TokenBucket), St("ops", TokenBucket));

    public static readonly StructSchema Action = new("ActionBody", E("action_type", true, "FlushMetrics", "InstanceStart", "SendCtrlAltDel"));
    public static readonly StructSchema BootSource = new("BootSourceConfig", S("kernel_image_path", true), S("initrd_path"), S("boot_args"));
    public static readonly StructSchema Drive = new("BlockDeviceConfig",
        S("drive_id", true), S("partuuid"), B("is_root_device", true), E("cache_type", false, "Unsafe", "Writeback"),
        B("is_read_only"), S("path_on_host"), St("rate_limiter", RateLimiter), E("io_engine", false, "Sync", "Async"), S("socket"));
    public static readonly StructSchema PartialDrive = new("BlockDeviceUpdateConfig", S("drive_id", true), S("path_on_host"), St("rate_limiter", RateLimiter));

    // Firecracker's x86_64 StaticCpuTemplate variants, in its order (serde lists them so in "unknown variant").
    internal static readonly string[] CpuTemplates = Config.ConfigLoader.StaticCpuTemplates;
    internal static readonly string[] HugePages = ["None", "Transparent", "2M"];
    public static readonly StructSchema MachineConfig = new("MachineConfig",
        K("vcpu_count", FieldKind.U8, true), K("mem_size_mib", FieldKind.Usize, true), B("smt"),
        E("cpu_template", false, CpuTemplates), B("track_dirty_pages"), E("huge_pages", false, HugePages));
    public static readonly StructSchema MachineConfigUpdate = new("MachineConfigUpdate",
        K("vcpu_count", FieldKind.U8), K("mem_size_mib", FieldKind.Usize), B("smt"),
        E("cpu_template", false, CpuTemplates), B("track_dirty_pages"), E("huge_pages", false, HugePages));

    public static readonly StructSchema Logger = new("LoggerConfig", S("log_path"), S("level"), B("show_level"), B("show_log_origin"), S("module"));
    public static readonly StructSchema Metrics = new("MetricsConfig", S("metrics_path", true), B("emit_id"), new Field("properties", FieldKind.StringMap));
    public static readonly StructSchema Vm = new("Vm", E("state", true, "Paused", "Resumed"));

    public static readonly StructSchema NetworkInterface = new("NetworkInterfaceConfig",
        S("iface_id", true), S("host_dev_name", true), S("guest_mac"), St("rx_rate_limiter", RateLimiter), St("tx_rate_limiter", RateLimiter), K("mtu", FieldKind.U16));
    public static readonly StructSchema PartialNetworkInterface = new("NetworkInterfaceUpdateConfig",
        S("iface_id", true), St("rx_rate_limiter", RateLimiter), St("tx_rate_limiter", RateLimiter));

    public static readonly StructSchema Vsock = new("VsockDeviceConfig", S("vsock_id"), K("guest_cid", FieldKind.U32, true), S("uds_path", true));
    public static readonly StructSchema Entropy = new("EntropyDeviceConfig", St("rate_limiter", RateLimiter));
    public static readonly StructSchema Pmem = new("PmemConfig", S("id", true), S("path_on_host", true), B("root_device"), B("read_only"), St("rate_limiter", RateLimiter));
    public static readonly StructSchema PartialPmem = new("PmemDeviceUpdateConfig", S("id", true), St("rate_limiter", RateLimiter));

    public static readonly StructSchema Balloon = new("BalloonDeviceConfig",
        K("amount_mib", FieldKind.U32, true), B("deflate_on_oom", true), K("stats_polling_interval_s", FieldKind.U16),
        B("free_page_hinting"), B("free_page_reporting"));
    public static readonly StructSchema BalloonUpdate = new("BalloonUpdateConfig", K("amount_mib", FieldKind.U32, true));
    /// <summary>PATCH /balloon/hinting/start: Firecracker's StartHintingCmd has no deny_unknown_fields.</summary>
    public static readonly StructSchema BalloonStartCmd = new("StartHintingCmd", B("acknowledge_on_stop")) { IgnoreUnknown = true };
    public static readonly StructSchema Serial = new("SerialConfig", S("serial_out_path"), St("rate_limiter", TokenBucket));
    public static readonly StructSchema BalloonStatsUpdate = new("BalloonUpdateStatsConfig", K("stats_polling_interval_s", FieldKind.U16, true));

    public static readonly StructSchema MemoryHotplug = new("MemoryHotplugConfig",
        K("total_size_mib", FieldKind.U32, true), K("block_size_mib", FieldKind.U32), K("slot_size_mib", FieldKind.U32));
    public static readonly StructSchema MemoryHotplugSizeUpdate = new("MemoryHotplugSizeUpdate", K("requested_size_mib", FieldKind.U32, true));

    public static readonly StructSchema MmdsConfig = new("MmdsConfig",
        E("version", false, "V1", "V2"), new Field("network_interfaces", FieldKind.StringArray, true), S("ipv4_address"), B("imds_compat"));

    private static readonly StructSchema CpuidRegisterModifier = new("CpuidRegisterModifier", E("register", true, "eax", "ebx", "ecx", "edx"), S("bitmap", true));
    private static readonly StructSchema CpuidLeafModifier = new("CpuidLeafModifier",
        S("leaf", true), S("subleaf", true), K("flags", FieldKind.I32, true), Arr("modifiers", CpuidRegisterModifier, true));
    private static readonly StructSchema MsrModifier = new("RegisterModifier", S("addr", true), S("bitmap", true));
    private static readonly StructSchema VcpuFeatures = new("VcpuFeatures", K("index", FieldKind.I32, true), S("bitmap", true));
    public static readonly StructSchema CpuConfig = new("CustomCpuTemplate",
        new Field("kvm_capabilities", FieldKind.StringArray), Arr("cpuid_modifiers", CpuidLeafModifier), Arr("msr_modifiers", MsrModifier),
        Arr("reg_modifiers", MsrModifier), Arr("vcpu_features", VcpuFeatures));

    public static readonly StructSchema SnapshotCreate = new("CreateSnapshotParams", E("snapshot_type", false, "Full", "Diff"), S("snapshot_path", true), S("mem_file_path", true));
    private static readonly StructSchema MemBackend = new("MemBackendConfig", E("backend_type", true, "File", "Uffd"), S("backend_path", true));
    private static readonly StructSchema NetworkOverride = new("NetworkOverride", S("iface_id", true), S("host_dev_name", true));
    private static readonly StructSchema VsockOverride = new("VsockOverride", S("uds_path", true));
    public static readonly StructSchema SnapshotLoad = new("LoadSnapshotConfig",
        S("snapshot_path", true), S("mem_file_path"), St("mem_backend", MemBackend), B("enable_diff_snapshots"), B("track_dirty_pages"),
        B("resume_vm"), Arr("network_overrides", NetworkOverride), St("vsock_override", VsockOverride), B("clock_realtime"));

    /// <summary>
    /// Firecracker's config file (resources.rs VmmConfig), fields in its declaration order so that the first missing
    /// one is the one serde names. Unknown top-level keys are skipped as serde skips them there; "cpu-config" (a
    /// template or a path) is checked by <see cref="Config.ConfigLoader"/>.
    /// </summary>
    public static readonly StructSchema VmmConfigFile = new("VmmConfig",
        St("balloon", Balloon), Arr("drives", Drive, true), St("boot-source", BootSource, true), K("cpu-config", FieldKind.Any),
        St("logger", Logger), St("machine-config", MachineConfig), St("metrics", Metrics), St("mmds-config", MmdsConfig),
        Arr("network-interfaces", NetworkInterface), St("vsock", Vsock), St("entropy", Entropy), Arr("pmem", Pmem),
        St("memory-hotplug", MemoryHotplug))
    { IgnoreUnknown = true };
}
