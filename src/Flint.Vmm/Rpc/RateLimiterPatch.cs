using System.Text.Json;
using System.Text.Json.Nodes;

namespace Flint.Vmm.Rpc;

/// <summary>
/// What a successful PATCH of a rate limiter leaves in the configuration, as Firecracker's RateLimiterUpdate does to
/// the live limiter (which its GET /vm/config reads back): a bucket the patch names replaces the stored one, a bucket
/// with size or refill_time 0 removes it (BucketUpdate::Disabled), a bucket the patch leaves out (or sets to null)
/// stays as it was. A limiter left with no bucket is dropped.
/// </summary>
public static class RateLimiterPatch
{
    /// <summary>The stored limiter <paramref name="stored"/> (null: none) with <paramref name="patch"/> applied.</summary>
    public static JsonNode? Merge(JsonNode? stored, JsonElement patch)
    {
        if (patch.ValueKind != JsonValueKind.Object) return stored?.DeepClone();
        var result = stored is JsonObject so ? (JsonObject)so.DeepClone() : new JsonObject();
        foreach (var name in (ReadOnlySpan<string>)["bandwidth", "ops"])
        {
            if (!patch.TryGetProperty(name, out var bucket) || bucket.ValueKind != JsonValueKind.Object) continue;
            if (IsDisabled(bucket)) result.Remove(name);
            else result[name] = JsonNode.Parse(bucket.GetRawText());
        }
        return result.Count == 0 ? null : result;
    }

    /// <summary>
    /// Interface <paramref name="ifaceId"/> of <paramref name="interfaces"/> with its rx/tx limiters patched; the
    /// others unchanged. The list is new; the stored elements are not touched.
    /// </summary>
    public static List<JsonElement> ApplyToInterface(IReadOnlyList<JsonElement> interfaces, string ifaceId, JsonElement? rx, JsonElement? tx)
    {
        var result = new List<JsonElement>(interfaces.Count);
        foreach (var e in interfaces)
        {
            if (e.GetProperty("iface_id").GetString() != ifaceId) { result.Add(e); continue; }
            var o = JsonNode.Parse(e.GetRawText())!.AsObject();
            if (rx is { } r) Set(o, "rx_rate_limiter", Merge(o["rx_rate_limiter"], r));
            if (tx is { } t) Set(o, "tx_rate_limiter", Merge(o["tx_rate_limiter"], t));
            result.Add(JsonDocument.Parse(o.ToJsonString()).RootElement.Clone());
        }
        return result;
    }

    private static void Set(JsonObject o, string key, JsonNode? value)
    {
        if (value == null) o.Remove(key); else o[key] = value;
    }

    private static bool IsDisabled(JsonElement bucket) =>
        (bucket.TryGetProperty("size", out var s) && s.TryGetUInt64(out ulong size) && size == 0)
        || (bucket.TryGetProperty("refill_time", out var r) && r.TryGetUInt64(out ulong refill) && refill == 0);
}
