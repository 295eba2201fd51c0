using System.Text.Json;

namespace Flint.Seccomp;

/// <summary>
/// Reads Firecracker's seccompiler JSON: <c>{"vmm": {"default_action": ..., "filter_action": ..., "filter": [rules]}, "api": ..., "vcpu": ...}</c>.
/// A rule is <c>{"syscall": NAME, "comment"?: ..., "args"?: [conditions]}</c>; a condition is
/// <c>{"index": 0-5, "type": "dword"|"qword", "op": "eq"|"ne"|"lt"|"le"|"gt"|"ge"|{"masked_eq": MASK}, "val": N, "comment"?: ...}</c>
/// (also accepted: "arg_index"/"arg_type" and <c>"op": "masked_eq", "mask": MASK</c>). Unknown fields are errors, so typos
/// don't silently widen a filter. Parsed with <see cref="JsonDocument"/> (no reflection; NativeAOT-safe).
/// </summary>
public static class FilterParser
{
    public static Dictionary<string, SeccompFilterSpec> Parse(string json)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(json, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true }); }
        catch (JsonException e) { throw new SeccompConfigException($"Invalid seccomp filter JSON: {e.Message}", e); }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new SeccompConfigException("Invalid seccomp filter JSON: the top level must be an object mapping thread kinds to filters.");
            var result = new Dictionary<string, SeccompFilterSpec>(StringComparer.Ordinal);
            foreach (var p in root.EnumerateObject())
            {
                if (result.ContainsKey(p.Name)) throw new SeccompConfigException($"Seccomp filter '{p.Name}' is defined twice.");
                result[p.Name] = ParseFilter(p.Name, p.Value);
            }
            return result;
        }
    }

    private static SeccompFilterSpec ParseFilter(string name, JsonElement e)
    {
        if (e.ValueKind != JsonValueKind.Object) throw Err(name, "must be an object with default_action, filter_action and filter");
        SeccompAction? def = null, act = null;
        List<SeccompRule>? rules = null;
        foreach (var p in e.EnumerateObject())
        {
            switch (p.Name)
            {
                case "default_action": def = ParseAction($"{name}.default_action", p.Value); break;
                case "filter_action": act = ParseAction($"{name}.filter_action", p.Value); break;
                case "filter":
                    if (p.Value.ValueKind != JsonValueKind.Array) throw Err($"{name}.filter", "must be an array of rules");
                    rules = [];
                    int i = 0;
                    foreach (var r in p.Value.EnumerateArray()) rules.Add(ParseRule($"{name}.filter[{i++}]", r));
                    break;
                case "comment": break;
                default: throw Err(name, $"unknown field '{p.Name}'");
            }
        }
        if (def is null) throw Err(name, "missing 'default_action'");
        if (act is null) throw Err(name, "missing 'filter_action'");
        if (rules is null) throw Err(name, "missing 'filter'");
        return new SeccompFilterSpec(def.Value, act.Value, rules);
    }

    private static SeccompRule ParseRule(string where, JsonElement e)
    {
        if (e.ValueKind != JsonValueKind.Object) throw Err(where, "a rule must be an object with a 'syscall' field");
        string? syscall = null, comment = null;
        var conds = new List<SeccompCondition>();
        foreach (var p in e.EnumerateObject())
        {
            switch (p.Name)
            {
                case "syscall":
                    if (p.Value.ValueKind != JsonValueKind.String) throw Err(where, "'syscall' must be a string");
                    syscall = p.Value.GetString();
                    break;
                case "comment": comment = p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString() : null; break;
                case "args":
                    if (p.Value.ValueKind != JsonValueKind.Array) throw Err(where, "'args' must be an array");
                    int i = 0;
                    foreach (var c in p.Value.EnumerateArray()) conds.Add(ParseCondition($"{where}.args[{i++}]", c));
                    break;
                default: throw Err(where, $"unknown field '{p.Name}'");
            }
        }
        if (string.IsNullOrEmpty(syscall)) throw Err(where, "missing 'syscall'");
        if (!SyscallTable.TryGetNumber(syscall, out int nr)) throw Err(where, $"unknown syscall '{syscall}' (not an x86_64 syscall name)");
        return new SeccompRule(syscall, nr, conds, comment);
    }

    private static SeccompCondition ParseCondition(string where, JsonElement e)
    {
        if (e.ValueKind != JsonValueKind.Object) throw Err(where, "a condition must be an object");
        int? index = null;
        ArgType? type = null;
        CmpOp? op = null;
        ulong? val = null, mask = null;
        string? comment = null;
        foreach (var p in e.EnumerateObject())
        {
            switch (p.Name)
            {
                case "index" or "arg_index":
                {
                    ulong v = ReadU64(where, p.Name, p.Value);
                    if (v > 5) throw Err(where, $"argument index {v} is out of range (a syscall has arguments 0 to 5)");
                    index = (int)v;
                    break;
                }
                case "type" or "arg_type":
                    type = p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString() switch
                    {
                        "dword" => ArgType.Dword,
                        "qword" => ArgType.Qword,
                        _ => null,
                    } : null;
                    if (type is null) throw Err(where, $"bad argument type {p.Value.GetRawText()} (expected \"dword\" or \"qword\")");
                    break;
                case "op":
                    if (p.Value.ValueKind == JsonValueKind.Object)
                    {
                        // Firecracker's form: {"masked_eq": MASK}
                        var props = p.Value.EnumerateObject().ToList();
                        if (props.Count != 1 || props[0].Name != "masked_eq") throw Err(where, $"bad op {p.Value.GetRawText()} (expected {{\"masked_eq\": MASK}})");
                        op = CmpOp.MaskedEq;
                        mask = ReadU64(where, "masked_eq", props[0].Value);
                    }
                    else
                    {
                        op = p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString() switch
                        {
                            "eq" => CmpOp.Eq,
                            "ne" => CmpOp.Ne,
                            "lt" => CmpOp.Lt,
                            "le" => CmpOp.Le,
                            "gt" => CmpOp.Gt,
                            "ge" => CmpOp.Ge,
                            "masked_eq" => CmpOp.MaskedEq,
                            _ => null,
                        } : null;
                        if (op is null) throw Err(where, $"bad op {p.Value.GetRawText()} (expected eq, ne, lt, le, gt, ge or masked_eq)");
                    }
                    break;
                case "val": val = ReadU64(where, "val", p.Value); break;
                case "mask": mask = ReadU64(where, "mask", p.Value); break;
                case "comment": comment = p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString() : null; break;
                default: throw Err(where, $"unknown field '{p.Name}'");
            }
        }
        if (index is null) throw Err(where, "missing 'index'");
        if (type is null) throw Err(where, "missing 'type'");
        if (op is null) throw Err(where, "missing 'op'");
        if (val is null) throw Err(where, "missing 'val'");
        if (op == CmpOp.MaskedEq && mask is null) throw Err(where, "masked_eq needs a mask");
        if (op != CmpOp.MaskedEq && mask is not null) throw Err(where, "'mask' is only valid with masked_eq");
        if (type == ArgType.Dword && val > uint.MaxValue) throw Err(where, $"val {val} does not fit a dword");
        if (type == ArgType.Dword && mask > uint.MaxValue) throw Err(where, $"mask {mask} does not fit a dword");
        return new SeccompCondition(index.Value, type.Value, op.Value, val.Value, mask ?? 0, comment);
    }

    internal static SeccompAction ParseAction(string where, JsonElement e)
    {
        if (e.ValueKind == JsonValueKind.String)
        {
            string s = e.GetString()!;
            switch (s.ToLowerInvariant())
            {
                case "allow": return SeccompAction.Allow;
                case "trap": return SeccompAction.Trap;
                case "kill_thread": return SeccompAction.KillThread;
                case "kill_process" or "kill": return SeccompAction.KillProcess;
                case "log": return SeccompAction.Log;
            }
            foreach (var (prefix, kind) in new[] { ("errno(", SeccompActionKind.Errno), ("trace(", SeccompActionKind.Trace) })
                if (s.StartsWith(prefix, StringComparison.OrdinalIgnoreCase) && s.EndsWith(')')
                    && ushort.TryParse(s.AsSpan(prefix.Length, s.Length - prefix.Length - 1), out ushort n))
                    return new SeccompAction(kind, n);
            throw Err(where, $"unknown action \"{s}\" (expected allow, trap, kill_thread, kill_process, log, {{\"errno\": N}} or {{\"trace\": N}})");
        }
        if (e.ValueKind == JsonValueKind.Object)
        {
            var props = e.EnumerateObject().ToList();
            if (props.Count == 1 && props[0].Name is "errno" or "trace")
            {
                // Firecracker's examples write {"errno": -1}; the kernel keeps 16 bits of data.
                if (!props[0].Value.TryGetInt64(out long n) || n < -1 || n > ushort.MaxValue)
                    throw Err(where, $"{props[0].Name} value must be an integer from 0 to 65535");
                return new SeccompAction(props[0].Name == "errno" ? SeccompActionKind.Errno : SeccompActionKind.Trace, (ushort)(n & 0xffff));
            }
        }
        throw Err(where, $"bad action {e.GetRawText()}");
    }

    private static ulong ReadU64(string where, string field, JsonElement v)
    {
        if (v.ValueKind == JsonValueKind.Number && v.TryGetUInt64(out ulong u)) return u;
        throw Err(where, $"'{field}' must be a non-negative integer (got {v.GetRawText()})");
    }

    private static SeccompConfigException Err(string where, string what) => new($"Invalid seccomp filter at {where}: {what}.");
}
