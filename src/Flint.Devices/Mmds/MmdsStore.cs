using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Flint.Devices.Mmds;

/// <summary>A rejected store update; <see cref="StatusCode"/> is the API status to answer with (400 or 413).</summary>
public sealed class MmdsStoreException(string message, int statusCode) : Exception(message)
{
    public int StatusCode { get; } = statusCode;
}

/// <summary>Result of a guest lookup: HTTP status, body and whether the body is JSON.</summary>
public readonly record struct MmdsLookup(int Status, string Body, bool IsJson);

/// <summary>
/// The MMDS data store: one JSON document shared by the API (PUT/PATCH/GET /mmds) and every MMDS network stack.
/// Thread-safe: API-thread updates and event-loop reads serialise on one lock, so the guest sees either the old
/// or the new document, never a half-applied patch. Updates are size-checked (serialised UTF-8 bytes) before they
/// replace the document.
/// </summary>
public sealed class MmdsStore
{
    /// <summary>Firecracker's default: the API payload limit (51200 bytes) unless --mmds-size-limit says otherwise.</summary>
    public const int DefaultSizeLimit = 51200;

    private readonly Lock _lock = new();
    private JsonNode? _data;
    private bool _initialized;

    public MmdsStore(int sizeLimit = DefaultSizeLimit)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(sizeLimit);
        SizeLimit = sizeLimit;
    }

    public int SizeLimit { get; }

    public bool IsInitialized { get { lock (_lock) return _initialized; } }

    /// <summary>PUT /mmds: replaces the document. Throws <see cref="MmdsStoreException"/> (400 bad JSON, 413 too big).</summary>
    public void Put(string json)
    {
        var node = Parse(json);
        // Firecracker answers an oversized PUT with the same DataStoreLimitExceeded text as a PATCH.
        lock (_lock) Set(node, "The MMDS patch request doesn't fit.");
    }

    /// <summary>PATCH /mmds: RFC 7396 merge patch. 400 when the store was never set or the patch is not JSON, 413 when the result is too big.</summary>
    public void Patch(string json)
    {
        var patch = Parse(json);
        lock (_lock)
        {
            if (!_initialized) throw new MmdsStoreException("The MMDS data store is not initialized.", 400);
            var merged = MergePatch(_data?.DeepClone(), patch);
            Set(merged, "The MMDS patch request doesn't fit.");
        }
    }

    /// <summary>GET /mmds: the document as JSON text ("{}" before the first PUT).</summary>
    public string GetJson()
    {
        lock (_lock) return _initialized ? Compact(_data) : "{}";
    }

    /// <summary>
    /// Resolves a guest URI path (RFC 6901 pointer style: "/latest/meta-data/ami-id") and renders it: JSON, or the
    /// IMDS text format (object: its keys one per line, objects with a trailing '/'; string: the value; anything
    /// else: 501). 404 when the store is empty or the path does not exist.
    /// </summary>
    public MmdsLookup Lookup(string path, bool json)
    {
        lock (_lock)
        {
            if (!_initialized) return new(404, "Resource not found: " + path + ".", false);
            JsonNode? node = _data;
            foreach (var raw in path.Split('/', StringSplitOptions.RemoveEmptyEntries))
            {
                string key = raw.Replace("~1", "/").Replace("~0", "~");
                if (node is JsonObject o)
                {
                    if (!o.TryGetPropertyValue(key, out node)) return NotFound(path);
                }
                else if (node is JsonArray a && int.TryParse(key, out int i) && i >= 0 && i < a.Count && key == i.ToString())
                {
                    node = a[i];
                }
                else return NotFound(path);
            }
            if (json) return new(200, Compact(node), true);
            switch (node)
            {
                case JsonObject o:
                    var keys = new List<string>(o.Count);
                    foreach (var (k, v) in o) keys.Add(v is JsonObject ? k + "/" : k);
                    keys.Sort(StringComparer.Ordinal);
                    return new(200, string.Join('\n', keys), false);
                case JsonValue v when v.GetValueKind() == JsonValueKind.String && v.TryGetValue<string>(out var str):
                    return new(200, str, false);
                default:
                    return new(501, "Cannot retrieve value. The value has an unsupported type.", false);
            }
        }
    }

    private static MmdsLookup NotFound(string path) => new(404, "Resource not found: " + path + ".", false);

    private void Set(JsonNode? data, string tooBig)
    {
        if (CompactByteCount(data) > SizeLimit) throw new MmdsStoreException(tooBig, 413);
        _data = data;
        _initialized = true;
    }

    // Firecracker measures and serves the store as serde_json writes it: compact, UTF-8 as it is, only quotes,
    // backslashes and control characters escaped. System.Text.Json's default encoder also escapes non-ASCII and
    // HTML-sensitive characters ('<' becomes 6 bytes), which made the size limit bite early and changed the text.
    private static readonly JsonWriterOptions s_serdeLike = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static System.Buffers.ArrayBufferWriter<byte> Write(JsonNode? node)
    {
        var buf = new System.Buffers.ArrayBufferWriter<byte>();
        using (var w = new Utf8JsonWriter(buf, s_serdeLike))
        {
            if (node == null) w.WriteNullValue(); else node.WriteTo(w);
        }
        return buf;
    }

    private static string Compact(JsonNode? node) => Encoding.UTF8.GetString(Write(node).WrittenSpan);

    private static int CompactByteCount(JsonNode? node) => Write(node).WrittenCount;

    /// <summary>Parses MMDS JSON into a mutable tree; duplicate keys: the last wins. 400 on invalid JSON.</summary>
    public static JsonNode? Parse(string json)
    {
        try
        {
            using var doc = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 64 });
            return ToNode(doc.RootElement);
        }
        catch (Exception e) when (e is JsonException or ArgumentException or InvalidOperationException)
        {
            throw new MmdsStoreException($"Invalid MMDS data: {e.Message}", 400);
        }
    }

    private static JsonNode? ToNode(JsonElement e)
    {
        switch (e.ValueKind)
        {
            case JsonValueKind.Object:
                var o = new JsonObject();
                foreach (var p in e.EnumerateObject()) o[p.Name] = ToNode(p.Value);
                return o;
            case JsonValueKind.Array:
                var a = new JsonArray();
                foreach (var x in e.EnumerateArray()) a.Add(ToNode(x));
                return a;
            case JsonValueKind.Null:
                return null;
            default:
                return JsonValue.Create(e.Clone());
        }
    }

    /// <summary>RFC 7396 JSON merge patch; returns the new document (the target is consumed).</summary>
    public static JsonNode? MergePatch(JsonNode? target, JsonNode? patch)
    {
        if (patch is not JsonObject po) return patch?.DeepClone();
        if (target is not JsonObject to) to = new JsonObject();
        foreach (var (key, value) in po)
        {
            if (value is null) { to.Remove(key); continue; }
            to.TryGetPropertyValue(key, out var existing);
            if (existing != null) to.Remove(key);
            to[key] = MergePatch(existing, value);
        }
        return to;
    }
}
