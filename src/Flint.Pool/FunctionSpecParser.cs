using System.Text.Json;

namespace Flint.Pool;

/// <summary>
/// Reads a function's configuration (the body of <c>PUT /functions/{name}</c>) into a <see cref="FunctionSpec"/>,
/// checking every field once: unknown fields, wrong types and out-of-range values are refused with a sentence that
/// names the field (never a .NET exception text). The format is in docs/pool.md.
/// </summary>
public static class FunctionSpecParser
{
    public const int MaxBodyBytes = 64 * 1024;

    /// <summary>Jailer ids are alphanumerics and '-'; a slot id is the name, '-', a number.</summary>
    public static bool IsValidName(string name) =>
        name.Length is > 0 and <= 32 && char.IsAsciiLetterOrDigit(name[0]) && name.All(c => char.IsAsciiLetterOrDigit(c) || c == '-');

    public static FunctionSpec Parse(string name, ReadOnlySpan<byte> json)
    {
        if (!IsValidName(name))
            throw Bad($"Invalid function name '{Clip(name)}': 1 to 32 characters, letters, digits and '-', starting with a letter or digit.");
        JsonDocument doc;
        try { doc = JsonDocument.Parse(json.ToArray(), new JsonDocumentOptions { MaxDepth = 8 }); }
        catch (JsonException) { throw Bad("The body is not valid JSON."); }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object) throw Bad("The body must be a JSON object.");
            var spec = new FunctionSpec { Name = name };
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                var v = p.Value;
                spec = p.Name switch
                {
                    "kernel_image_path" => spec with { KernelPath = Str(p, 4096) },
                    "rootfs_path" => spec with { RootfsPath = Str(p, 4096) },
                    "rootfs_read_only" => spec with { RootfsReadOnly = Bool(p) },
                    "boot_args" => spec with { BootArgs = CmdLine(p) },
                    "handler_args" => spec with { HandlerArgs = CmdLine(p) },
                    "vcpu_count" => spec with { VcpuCount = Int(p, 1, 32) },
                    "mem_size_mib" => spec with { MemSizeMib = Int(p, 16, 65536) },
                    "snapshot" => spec with { Snapshot = Snapshot(p) },
                    "agent_port" => spec with { AgentPort = Int(p, 1, int.MaxValue) },
                    "min_warm" => spec with { MinWarm = Int(p, 0, 1024) },
                    "max_slots" => spec with { MaxSlots = Int(p, 1, 1024) },
                    "max_invocations_per_slot" => spec with { MaxInvocationsPerSlot = Int(p, 0, int.MaxValue) },
                    "idle_timeout_s" => spec with { IdleTimeout = TimeSpan.FromSeconds(Int(p, 1, 86400)) },
                    "invoke_timeout_ms" => spec with { InvokeTimeout = TimeSpan.FromMilliseconds(Int(p, 1, 900_000)) },
                    "queue_timeout_ms" => spec with { QueueTimeout = TimeSpan.FromMilliseconds(Int(p, 0, 600_000)) },
                    "ready_timeout_s" => spec with { ReadyTimeout = TimeSpan.FromSeconds(Int(p, 1, 3600)) },
                    "max_payload_bytes" => spec with { MaxPayloadBytes = Int(p, 0, 64 << 20) },
                    "max_result_bytes" => spec with { MaxResultBytes = Int(p, 0, 64 << 20) },
                    "cgroups" => spec with { Cgroups = Cgroups(p) },
                    _ => throw Bad($"Unknown field '{Clip(p.Name)}'."),
                };
            }
            if (spec.Snapshot == null && spec.KernelPath == null) throw Bad("Either kernel_image_path or snapshot is required.");
            if (spec.Snapshot != null && spec.KernelPath != null) throw Bad("kernel_image_path and snapshot exclude each other (a snapshot carries its kernel).");
            if (spec.MinWarm > spec.MaxSlots) throw Bad($"min_warm ({spec.MinWarm}) is over max_slots ({spec.MaxSlots}).");
            return spec;
        }
    }

    private static PoolException Bad(string m) => new(PoolErrorKind.BadRequest, m);

    private static string Clip(string s) => AgentClient.Printable(System.Text.Encoding.UTF8.GetBytes(s));

    private static string Str(JsonProperty p, int max)
    {
        if (p.Value.ValueKind != JsonValueKind.String) throw Bad($"Field '{p.Name}' must be a string.");
        string s = p.Value.GetString()!;
        if (s.Length == 0 || s.Length > max) throw Bad($"Field '{p.Name}' must be 1 to {max} characters.");
        if (s.Any(char.IsControl)) throw Bad($"Field '{p.Name}' contains control characters.");
        if (!Path.IsPathFullyQualified(s)) throw Bad($"Field '{p.Name}' must be an absolute path.");
        return s;
    }

    private static string CmdLine(JsonProperty p)
    {
        if (p.Value.ValueKind != JsonValueKind.String) throw Bad($"Field '{p.Name}' must be a string.");
        string s = p.Value.GetString()!;
        if (s.Length > 2048) throw Bad($"Field '{p.Name}' is over 2048 characters.");
        if (s.Any(c => c is < ' ' or > '~')) throw Bad($"Field '{p.Name}' must be printable ASCII.");
        return s;
    }

    private static bool Bool(JsonProperty p) => p.Value.ValueKind switch
    {
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        _ => throw Bad($"Field '{p.Name}' must be true or false."),
    };

    private static int Int(JsonProperty p, int min, int max)
    {
        if (p.Value.ValueKind != JsonValueKind.Number || !p.Value.TryGetInt64(out long v))
            throw Bad($"Field '{p.Name}' must be an integer.");
        if (v < min || v > max) throw Bad($"Field '{p.Name}' must be between {min} and {max}.");
        return (int)v;
    }

    private static SnapshotSource Snapshot(JsonProperty p)
    {
        if (p.Value.ValueKind != JsonValueKind.Object) throw Bad("Field 'snapshot' must be an object with snapshot_path and mem_file_path.");
        string? state = null, mem = null;
        foreach (var q in p.Value.EnumerateObject())
        {
            if (q.Name == "snapshot_path") state = Str(q, 4096);
            else if (q.Name == "mem_file_path") mem = Str(q, 4096);
            else throw Bad($"Unknown field 'snapshot.{Clip(q.Name)}'.");
        }
        if (state == null || mem == null) throw Bad("Field 'snapshot' needs snapshot_path and mem_file_path.");
        return new SnapshotSource(state, mem);
    }

    private static IReadOnlyList<string> Cgroups(JsonProperty p)
    {
        if (p.Value.ValueKind != JsonValueKind.Array) throw Bad("Field 'cgroups' must be an array of \"file=value\" strings.");
        var list = new List<string>();
        foreach (var e in p.Value.EnumerateArray())
        {
            string? s = e.ValueKind == JsonValueKind.String ? e.GetString() : null;
            int eq = s?.IndexOf('=') ?? -1;
            if (s == null || eq <= 0 || eq == s.Length - 1 || s.Length > 256
                || !s[..eq].All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_')
                || s[(eq + 1)..].Any(c => c is < ' ' or > '~'))
                throw Bad("Each cgroups entry must be \"<file>=<value>\", e.g. \"memory.max=268435456\".");
            list.Add(s);
        }
        if (list.Count > 16) throw Bad("At most 16 cgroups entries.");
        return list;
    }
}
