namespace Flint.PoolDaemon;

/// <summary>One parsed request: method, path and query (ASCII), and its body.</summary>
public sealed record HttpRequest(string Method, string Path, string Query, byte[] Body);

/// <summary>An answer: status, content type, body, and extra headers.</summary>
public sealed record HttpResponse(int Status, string ContentType, byte[] Body, IReadOnlyList<(string Name, string Value)>? Headers = null)
{
    public static HttpResponse NoContent { get; } = new(204, "", []);

    public static HttpResponse Json(int status, byte[] body) => new(status, "application/json", body);

    /// <summary>A refusal in Firecracker's shape: <c>{"fault_message": "..."}</c>.</summary>
    public static HttpResponse Fault(int status, string message, IReadOnlyList<(string, string)>? headers = null)
    {
        using var ms = new MemoryStream();
        using (var w = new System.Text.Json.Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            w.WriteString("fault_message", message);
            w.WriteEndObject();
        }
        return new HttpResponse(status, "application/json", ms.ToArray(), headers);
    }
}
