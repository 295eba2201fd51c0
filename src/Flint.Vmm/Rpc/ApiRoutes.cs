namespace Flint.Vmm.Rpc;

/// <summary>The HTTP methods micro-http parses (any other is refused before routing).</summary>
public enum ApiMethod { Get, Put, Patch, Delete }

/// <summary>Whether a route takes the request with a body, without one, or either (Firecracker's Some/None match).</summary>
public enum BodyRule { None, Required, Any }

/// <summary>
/// The path tokens after the first, as Firecracker reads them: the request path with its leading '/'s trimmed, split
/// on '/', a trailing empty token dropped (Rust's <c>trim_start_matches('/').split_terminator('/')</c>). A span
/// walker: routing allocates nothing until a parser needs a token as a string (an id).
/// </summary>
public ref struct PathTokens
{
    private ReadOnlySpan<char> _rest;
    private bool _done;

    public PathTokens(ReadOnlySpan<char> path)
    {
        _rest = path.TrimStart('/');
        _done = false;
    }

    /// <summary>The next token; false when there is none (Rust's <c>next()</c> returning None).</summary>
    public bool Next(out ReadOnlySpan<char> token)
    {
        token = default;
        if (_done) return false;
        int slash = _rest.IndexOf('/');
        if (slash < 0)
        {
            _done = true;
            token = _rest;
            return !token.IsEmpty; // split_terminator: no empty token after a trailing '/'
        }
        token = _rest[..slash];
        _rest = _rest[(slash + 1)..];
        return true;
    }

    /// <summary>The next token as a string, or null when there is none.</summary>
    public string? NextString() => Next(out var t) ? t.ToString() : null;
}

/// <summary>Turns a request's body and remaining path tokens into an action or a Firecracker-worded error.</summary>
public delegate ParsedRequest RouteParser(string? body, PathTokens rest);

/// <summary>
/// One row of Firecracker's route table (<c>ParsedRequest::try_from</c> in its parsed_request.rs): the method, the
/// first path token, the body rule, an optional required second token (Firecracker's match guards, e.g. GET
/// /vm/config), the name of its per-route counter in the get/put/patch_api_requests metric groups (null: Firecracker
/// keeps none) and its parser.
/// </summary>
public sealed class ApiRoute(ApiMethod method, string resource, BodyRule body, string? second, string? metric, RouteParser parse)
{
    public ApiMethod Method { get; } = method;
    public string Resource { get; } = resource;
    public BodyRule Body { get; } = body;
    public string? Second { get; } = second;
    /// <summary>Counter stem: "machine_cfg" counts machine_cfg_count (and machine_cfg_fails for PUT and PATCH).</summary>
    public string? Metric { get; } = metric;
    public RouteParser Parse { get; } = parse;
    /// <summary>Position in <see cref="ApiRoutes.All"/>.</summary>
    public int Index { get; internal set; }

    /// <summary>The metric group of this route's counter, as Firecracker names it.</summary>
    public string MetricGroup => Method switch
    {
        ApiMethod.Get => "get_api_requests",
        ApiMethod.Put => "put_api_requests",
        ApiMethod.Patch => "patch_api_requests",
        _ => "delete_api_requests",
    };

    /// <summary>"PUT /snapshot/load" style text for documentation and tests.</summary>
    public override string ToString() =>
        $"{ApiRoutes.MethodName(Method)} /{Resource}{(Second != null ? "/" + Second : "")}";
}

/// <summary>
/// The API's only route table: every (method, first path token) Firecracker's API server routes, in Firecracker's
/// match order, with each route's counter. <see cref="ApiRequestParser"/> routes through it and
/// <see cref="Metrics.ApiRequestMetrics"/> counts per row; docs/compatibility.md lists the same rows.
/// </summary>
public static class ApiRoutes
{
    public static readonly ApiRoute[] All = Number(ApiRequestParser.BuildRoutes());

    private static ApiRoute[] Number(ApiRoute[] routes)
    {
        for (int i = 0; i < routes.Length; i++) routes[i].Index = i;
        return routes;
    }

    public static string MethodName(ApiMethod m) => m switch
    {
        ApiMethod.Get => "GET",
        ApiMethod.Put => "PUT",
        ApiMethod.Patch => "PATCH",
        _ => "DELETE",
    };

    public static bool TryParseMethod(string method, out ApiMethod m)
    {
        switch (method)
        {
            case "GET": m = ApiMethod.Get; return true;
            case "PUT": m = ApiMethod.Put; return true;
            case "PATCH": m = ApiMethod.Patch; return true;
            case "DELETE": m = ApiMethod.Delete; return true;
            default: m = default; return false;
        }
    }

    /// <summary>
    /// The first row that takes this request (Firecracker's first matching arm), or null. <paramref name="second"/> is
    /// the second path token, or null when there is none.
    /// </summary>
    public static ApiRoute? Find(ApiMethod method, ReadOnlySpan<char> first, bool hasBody, ReadOnlySpan<char> second, bool hasSecond)
    {
        foreach (var r in All)
        {
            if (r.Method != method || !first.SequenceEqual(r.Resource)) continue;
            if (r.Body == BodyRule.None && hasBody) continue;
            if (r.Body == BodyRule.Required && !hasBody) continue;
            if (r.Second != null && (!hasSecond || !second.SequenceEqual(r.Second))) continue;
            return r;
        }
        return null;
    }
}
