using System.Globalization;
using System.Text;
using System.Text.Json;
using Flint.Pool;

namespace Flint.PoolDaemon;

/// <summary>
/// The daemon's routes (docs/pool.md):
/// <c>PUT/GET/DELETE /functions/{name}</c>, <c>GET /functions</c>, <c>POST /functions/{name}/invoke</c>,
/// <c>GET /functions/{name}/slots/{slot}/metrics</c>, <c>GET /metrics[?format=prometheus]</c>, <c>GET /health</c>,
/// <c>GET /ready</c>. Errors are <c>{"fault_message": "..."}</c> with a status per <see cref="PoolErrorKind"/>.
/// </summary>
public sealed class PoolApi(PoolRegistry registry, PoolMetricsExporter exporter)
{
    private volatile bool _stopping;

    /// <summary>After this, /ready answers 503 (a load balancer stops sending) while the drain runs.</summary>
    public void MarkStopping() => _stopping = true;

    public async Task<HttpResponse> HandleAsync(HttpRequest req, CancellationToken ct)
    {
        try
        {
            return await RouteAsync(req, ct);
        }
        catch (PoolException e)
        {
            return HttpResponse.Fault(Status(e.Kind), e.Message, e.Kind is PoolErrorKind.PoolFull ? [("Retry-After", "1")] : null);
        }
    }

    internal static int Status(PoolErrorKind k) => k switch
    {
        PoolErrorKind.BadRequest => 400,
        PoolErrorKind.NotFound => 404,
        PoolErrorKind.AlreadyExists => 409,
        PoolErrorKind.PoolFull or PoolErrorKind.Draining => 503,
        PoolErrorKind.Timeout => 504,
        _ => 502, // LaunchFailed, SlotDied, Garbage: the function's VM failed, not the request
    };

    private async Task<HttpResponse> RouteAsync(HttpRequest req, CancellationToken ct)
    {
        var parts = req.Path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        switch (parts)
        {
            case ["health"] when req.Method == "GET":
                return Json(200, w => { w.WriteString("status", "ok"); w.WriteNumber("functions", registry.Pools().Count); });
            case ["ready"] when req.Method == "GET":
                return Ready();
            case ["metrics"] when req.Method == "GET":
                if (req.Query == "format=prometheus")
                    return new HttpResponse(200, "text/plain; version=0.0.4", Encoding.UTF8.GetBytes(exporter.ToPrometheus()));
                return Json(200, w => { w.WritePropertyName("flint_pool"); exporter.WriteJson(w); }, wrap: true);
            case ["functions"] when req.Method == "GET":
                return JsonArray(registry.Pools());
            case ["functions", var name]:
                return req.Method switch
                {
                    "PUT" => await RegisterAsync(name, req.Body, ct),
                    "GET" => Json(200, w => WriteFunction(w, registry.Get(name), slots: true)),
                    "DELETE" => await DrainAsync(name),
                    _ => NotAllowed(req),
                };
            case ["functions", var name, "invoke"]:
                return req.Method == "POST" ? await InvokeAsync(name, req.Body, ct) : NotAllowed(req);
            case ["functions", var name, "slots", var slot, "metrics"] when req.Method == "GET":
                var m = await registry.Get(name).ReadSlotMetricsAsync(slot, ct);
                return m == null
                    ? HttpResponse.Fault(404, $"Function '{name}' has no running slot '{AgentClient.Printable(Encoding.UTF8.GetBytes(slot))}' with metrics.")
                    : HttpResponse.Json(200, Encoding.UTF8.GetBytes(m));
            default:
                return HttpResponse.Fault(404, $"No route for {req.Method} {AgentClient.Printable(Encoding.ASCII.GetBytes(req.Path))}.");
        }
    }

    private static HttpResponse NotAllowed(HttpRequest r) =>
        HttpResponse.Fault(405, $"{r.Method} is not allowed on {AgentClient.Printable(Encoding.ASCII.GetBytes(r.Path))}.");

    private async Task<HttpResponse> RegisterAsync(string name, byte[] body, CancellationToken ct)
    {
        if (body.Length > FunctionSpecParser.MaxBodyBytes)
            throw new PoolException(PoolErrorKind.BadRequest, $"A function configuration is at most {FunctionSpecParser.MaxBodyBytes} bytes.");
        var spec = FunctionSpecParser.Parse(name, body);
        var pool = await registry.RegisterAsync(spec, ct);
        return Json(201, w => WriteFunction(w, pool, slots: false));
    }

    private async Task<HttpResponse> DrainAsync(string name)
    {
        await registry.DrainAsync(name);
        return HttpResponse.NoContent;
    }

    private async Task<HttpResponse> InvokeAsync(string name, byte[] payload, CancellationToken ct)
    {
        var r = await registry.Get(name).InvokeAsync(payload, ct);
        return new HttpResponse(200, "application/octet-stream", r.Body,
        [
            ("X-Flint-Status", r.Status.ToString(CultureInfo.InvariantCulture)),
            ("X-Flint-Slot", r.SlotId),
            ("X-Flint-Duration-Us", ((long)r.Duration.TotalMicroseconds).ToString(CultureInfo.InvariantCulture)),
        ]);
    }

    /// <summary>Ready: not stopping, and every function has its warm minimum up (idle or busy).</summary>
    private HttpResponse Ready()
    {
        var short_ = registry.Pools().Where(p => { var c = p.Counts(); return c.Idle + c.Busy < Math.Min(p.Spec.MinWarm, p.Spec.MaxSlots); })
            .Select(p => p.Name).ToArray();
        bool ready = !_stopping && short_.Length == 0;
        return Json(ready ? 200 : 503, w =>
        {
            w.WriteBoolean("ready", ready);
            w.WriteBoolean("stopping", _stopping);
            w.WriteStartArray("functions_below_min_warm");
            foreach (var n in short_) w.WriteStringValue(n);
            w.WriteEndArray();
        });
    }

    private static HttpResponse JsonArray(IReadOnlyList<FunctionPool> pools)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartArray();
            foreach (var p in pools) { w.WriteStartObject(); WriteFunction(w, p, slots: false); w.WriteEndObject(); }
            w.WriteEndArray();
        }
        return HttpResponse.Json(200, ms.ToArray());
    }

    private static void WriteFunction(Utf8JsonWriter w, FunctionPool p, bool slots)
    {
        var s = p.Spec;
        var c = p.Counts();
        w.WriteString("name", s.Name);
        w.WriteString("source", s.IsSnapshot ? "snapshot" : "boot");
        w.WriteString("state", p.IsDraining ? "draining" : "active");
        w.WriteNumber("min_warm", s.MinWarm);
        w.WriteNumber("max_slots", s.MaxSlots);
        w.WriteNumber("max_invocations_per_slot", s.MaxInvocationsPerSlot);
        w.WriteNumber("idle_timeout_s", (long)s.IdleTimeout.TotalSeconds);
        w.WriteNumber("invoke_timeout_ms", (long)s.InvokeTimeout.TotalMilliseconds);
        w.WriteNumber("queue_timeout_ms", (long)s.QueueTimeout.TotalMilliseconds);
        w.WriteStartObject("slots_by_state");
        w.WriteNumber("idle", c.Idle);
        w.WriteNumber("busy", c.Busy);
        w.WriteNumber("starting", c.Starting);
        w.WriteEndObject();
        w.WriteNumber("waiting", c.Waiting);
        if (!slots) return;
        w.WriteStartArray("slots");
        foreach (var slot in p.Slots())
        {
            w.WriteStartObject();
            w.WriteString("id", slot.Id);
            w.WriteNumber("pid", slot.Pid);
            w.WriteString("state", slot.State);
            w.WriteNumber("invocations", slot.Invocations);
            w.WriteEndObject();
        }
        w.WriteEndArray();
    }

    private static HttpResponse Json(int status, Action<Utf8JsonWriter> body, bool wrap = false)
    {
        using var ms = new MemoryStream();
        using (var w = new Utf8JsonWriter(ms))
        {
            w.WriteStartObject();
            body(w);
            w.WriteEndObject();
        }
        return HttpResponse.Json(status, ms.ToArray());
    }
}
