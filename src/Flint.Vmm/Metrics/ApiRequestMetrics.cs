using Flint.Vmm.Rpc;

namespace Flint.Vmm.Metrics;

/// <summary>
/// Firecracker's per-route API counters (<c>get_api_requests</c>, <c>put_api_requests</c>,
/// <c>patch_api_requests</c>) and <c>deprecated_api.deprecated_http_api_calls</c>. Which route counts under which
/// name is a column of the route table (<see cref="ApiRoutes"/>), not a second table here. Each request to a counted
/// route adds to its <c>*_count</c>; one answered with an error (parse failure or refused by the VMM, status 400 and
/// up) adds to its <c>*_fails</c> too. Routes Firecracker keeps no counter for (GET /balloon, PUT /snapshot/create...)
/// are not counted. Recording allocates nothing: the API thread calls it once per request.
/// </summary>
public sealed class ApiRequestMetrics
{
    private readonly int[] _slotOfRoute;          // route index -> counter slot, -1: not counted
    private readonly (string Group, string Stem)[] _slots;
    private readonly long[] _count, _fails;
    private long _deprecated;

    public ApiRequestMetrics()
    {
        var routes = ApiRoutes.All;
        _slotOfRoute = new int[routes.Length];
        var slots = new List<(string, string)>();
        foreach (var r in routes)
        {
            if (r.Metric == null) { _slotOfRoute[r.Index] = -1; continue; }
            var key = (r.MetricGroup, r.Metric);
            int i = slots.IndexOf(key);
            if (i < 0) { slots.Add(key); i = slots.Count - 1; }
            _slotOfRoute[r.Index] = i; // PUT /mmds and PUT /mmds/config share mmds_count, as in Firecracker
        }
        _slots = [.. slots];
        _count = new long[_slots.Length];
        _fails = new long[_slots.Length];
    }

    /// <summary>Requests that used a deprecated field or endpoint (deprecated_api.deprecated_http_api_calls).</summary>
    public long DeprecatedHttpApiCalls => Interlocked.Read(ref _deprecated);

    public void RecordDeprecated() => Interlocked.Increment(ref _deprecated);

    /// <summary>Counts one answered request routed to <paramref name="route"/> (null: no route took it; not counted).</summary>
    public void Record(ApiRoute? route, int status)
    {
        if (route == null) return;
        int slot = _slotOfRoute[route.Index];
        if (slot < 0) return;
        Interlocked.Increment(ref _count[slot]);
        if (status >= 400) Interlocked.Increment(ref _fails[slot]);
    }

    /// <summary>Counts one answered request by method and path (the route whatever the body).</summary>
    public void Record(string method, string path, int status)
    {
        if (!ApiRoutes.TryParseMethod(method, out var m)) return;
        var tokens = new PathTokens(path);
        var first = tokens.Next(out var f) ? f : default;
        bool hasSecond = tokens.Next(out var second);
        foreach (var body in new[] { BodyRule.Required, BodyRule.None })
            if (ApiRoutes.Find(m, first, body == BodyRule.Required, second, hasSecond) is { } r) { Record(r, status); return; }
    }

    /// <summary>Binds every counter under Firecracker's group and counter names.</summary>
    public void BindTo(MetricsRegistry r)
    {
        for (int i = 0; i < _slots.Length; i++)
        {
            int slot = i;
            var (group, stem) = _slots[i];
            r.Bind(group, stem + "_count", () => Interlocked.Read(ref _count[slot]));
            if (group != "get_api_requests") r.Bind(group, stem + "_fails", () => Interlocked.Read(ref _fails[slot]));
        }
        r.Bind("deprecated_api", "deprecated_http_api_calls", () => Interlocked.Read(ref _deprecated));
    }
}
