using System.Text;

namespace Flint.Vmm.Logging;

/// <summary>
/// The API server's log lines in Firecracker's words (its api_server/parsed_request.rs and mod.rs), so that tools and
/// tests that grep Firecracker's log find the same lines: one per request received, one per answer.
/// </summary>
public static class ApiLogLines
{
    /// <summary>
    /// "The API server received a Put request on "/drives/root" with body "{...}"." (Firecracker's describe): the
    /// method as Rust prints the enum, the path and body as Rust Debug-quotes strings. Bodies of /mmds requests are
    /// never logged (they hold guest secrets), and a /cpu-config body only at Debug.
    /// </summary>
    public static string Received(string method, string path, string? body)
    {
        var sb = new StringBuilder(64 + path.Length + (body?.Length ?? 0));
        sb.Append("The API server received a ").Append(MethodName(method)).Append(" request on ");
        AppendDebugQuoted(sb, path);
        if (body != null && path != "/mmds")
        {
            if (path == "/cpu-config" && !Logger.IsEnabled(LogLevel.Debug))
                sb.Append(". To view the CPU template received by the API, configure log-level to DEBUG");
            else
            {
                sb.Append(" with body ");
                AppendDebugQuoted(sb, body);
            }
        }
        return sb.Append('.').ToString();
    }

    /// <summary>"The request was executed successfully. Status code: 204 No Content."</summary>
    public static string Success(int status) =>
        $"The request was executed successfully. Status code: {status} {(status == 204 ? "No Content" : "OK")}.";

    /// <summary>"Received Error. Status code: 400 Bad Request. Message: ..." with the fault message as text.</summary>
    public static string Error(int status, string message) =>
        $"Received Error. Status code: {status} {ReasonText(status)}. Message: {message}";

    private static string ReasonText(int status) => status switch
    {
        400 => "Bad Request",
        413 => "Payload too large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    };

    /// <summary>micro-http's Method as Rust's derived Debug prints it.</summary>
    private static string MethodName(string method) => method switch
    {
        "GET" => "Get",
        "PUT" => "Put",
        "PATCH" => "Patch",
        "DELETE" => "Delete",
        _ => method,
    };

    /// <summary>Rust's <c>{:?}</c> of a str: quotes, and \" \\ \n \r \t \0 and \u{..} for other control characters.</summary>
    public static void AppendDebugQuoted(StringBuilder sb, string s)
    {
        sb.Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\0': sb.Append("\\0"); break;
                default:
                    if (char.IsControl(c)) sb.Append("\\u{").Append(((int)c).ToString("x")).Append('}');
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }
}
