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

    /// <summary>A request <paramref name="route"/> parsed: counted before the VMM runs it (null route: not counted).</summary>
    public void RecordParsed(ApiRoute? route)
    {
        if (Slot(route) is int slot and >= 0) Interlocked.Increment(ref _count[slot]);
    }

    /// <summary>A request the parser of <paramref name="route"/> refused: counted and failed.</summary>
    public void RecordRefused(ApiRoute? route)
    {
        if (Slot(route) is not (int slot and >= 0)) return;
        Interlocked.Increment(ref _count[slot]);
        Interlocked.Increment(ref _fails[slot]);
    }

    private int? Slot(ApiRoute? route) => route == null ? null : _slotOfRoute[route.Index];

    /// <summary>By method and path (the route whatever the body), for callers without the parse: an error status
    /// counts as a parser refusal.</summary>
    public void Record(string method, string path, int status)
    {
        if (!ApiRoutes.TryParseMethod(method, out var m)) return;
        var tokens = new PathTokens(path);
        var first = tokens.Next(out var f) ? f : default;
        bool hasSecond = tokens.Next(out var second);
        foreach (var body in new[] { BodyRule.Required, BodyRule.None })
            if (ApiRoutes.Find(m, first, body == BodyRule.Required, second, hasSecond) is { } r)
            {
                if (status >= 400) RecordRefused(r); else RecordParsed(r);
                return;
            }
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
