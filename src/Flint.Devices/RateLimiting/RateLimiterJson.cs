using System.Text.Json;

namespace Flint.Devices.RateLimiting;

/// <summary>
/// Reads and writes Firecracker's <c>rate_limiter</c> object,
/// <c>{"bandwidth": {"size": N, "one_time_burst": N, "refill_time": N}, "ops": {...}}</c>, without reflection.
/// As in Firecracker: unknown keys are rejected, <c>size</c> and <c>refill_time</c> are required unsigned integers,
/// a null bucket or burst is the same as an absent one.
/// </summary>
public static class RateLimiterJson
{
    /// <summary>Parses a whole UTF-8 JSON document. Throws <see cref="RateLimiterConfigException"/>.</summary>
    public static RateLimiterConfig Parse(ReadOnlySpan<byte> utf8)
    {
        try
        {
            var reader = new Utf8JsonReader(utf8);
            using var doc = JsonDocument.ParseValue(ref reader);
            return Parse(doc.RootElement);
        }
        catch (JsonException e)
        {
            throw new RateLimiterConfigException($"invalid rate limiter JSON: {e.Message}");
        }
    }

    /// <summary>Parses a <c>rate_limiter</c> value; null (JSON null) yields <see cref="RateLimiterConfig.None"/>.</summary>
    public static RateLimiterConfig Parse(JsonElement e)
    {
        if (e.ValueKind == JsonValueKind.Null) return RateLimiterConfig.None;
        if (e.ValueKind != JsonValueKind.Object) throw new RateLimiterConfigException("rate_limiter must be an object");
        TokenBucketConfig? bw = null, ops = null;
        foreach (var p in e.EnumerateObject())
        {
            switch (p.Name)
            {
                case "bandwidth": bw = ParseBucket(p.Value, "bandwidth"); break;
                case "ops": ops = ParseBucket(p.Value, "ops"); break;
                default: throw new RateLimiterConfigException($"unknown field `{p.Name}`, expected `bandwidth` or `ops`");
            }
        }
        return new RateLimiterConfig(bw, ops);
    }

    /// <summary>One bucket object; null for JSON null.</summary>
    public static TokenBucketConfig? ParseBucket(JsonElement e, string name = "bucket")
    {
        if (e.ValueKind == JsonValueKind.Null) return null;
        if (e.ValueKind != JsonValueKind.Object) throw new RateLimiterConfigException($"{name} must be an object");
        ulong? size = null, refill = null, burst = null;
        foreach (var p in e.EnumerateObject())
        {
            switch (p.Name)
            {
                case "size": size = U64(p.Value, name, "size"); break;
                case "refill_time": refill = U64(p.Value, name, "refill_time"); break;
                case "one_time_burst": burst = p.Value.ValueKind == JsonValueKind.Null ? null : U64(p.Value, name, "one_time_burst"); break;
                default:
                    throw new RateLimiterConfigException(
                        $"{name}: unknown field `{p.Name}`, expected one of `size`, `one_time_burst`, `refill_time`");
            }
        }
        if (size is null) throw new RateLimiterConfigException($"{name}: missing field `size`");
        if (refill is null) throw new RateLimiterConfigException($"{name}: missing field `refill_time`");
        return new TokenBucketConfig(size.Value, burst, refill.Value);
    }

    private static ulong U64(JsonElement v, string bucket, string field)
    {
        if (v.ValueKind == JsonValueKind.Number && v.TryGetUInt64(out ulong x)) return x;
        throw new RateLimiterConfigException($"{bucket}.{field} must be an unsigned 64-bit integer");
    }

    /// <summary>Writes the object form (absent buckets and bursts are left out), e.g. for GET /vm/config.</summary>
    public static void Write(Utf8JsonWriter w, RateLimiterConfig config)
    {
        w.WriteStartObject();
        if (config.Bandwidth is { } bw) { w.WritePropertyName("bandwidth"); WriteBucket(w, bw); }
        if (config.Ops is { } ops) { w.WritePropertyName("ops"); WriteBucket(w, ops); }
        w.WriteEndObject();
    }

    public static void WriteBucket(Utf8JsonWriter w, TokenBucketConfig b)
    {
        w.WriteStartObject();
        w.WriteNumber("size", b.Size);
        if (b.OneTimeBurst is { } burst) w.WriteNumber("one_time_burst", burst);
        w.WriteNumber("refill_time", b.RefillTime);
        w.WriteEndObject();
    }
}
