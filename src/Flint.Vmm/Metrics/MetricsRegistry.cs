using System.Text.Json;
using Flint.Devices.Metrics;

namespace Flint.Vmm.Metrics;

/// <summary>
/// Firecracker-format metrics: one JSON object per flush with exactly Firecracker's keys
/// (<see cref="FirecrackerMetricsSchema"/>): <c>utc_timestamp_ms</c> first, then <c>id</c> and <c>properties</c> when
/// configured, then every group, always present. Inc metrics report the change since the previous flush, Store
/// metrics their value. Sources are read through delegates so devices keep plain long fields on their hot paths; a
/// number nobody binds reads 0.
/// </summary>
public sealed class MetricsRegistry
{
    /// <summary>A device of a per-device group; <see cref="Read"/> null for one configured but not built yet (zeros).</summary>
    public readonly record struct DeviceSource(string Id, Func<(string Name, long Value)[]>? Read);

    private sealed class Leaf(MetricLeaf def)
    {
        public readonly MetricLeaf Def = def;
        public Func<long> Read = static () => 0;
        public long Last;
    }

    private sealed class Group(MetricGroup def)
    {
        public readonly MetricGroup Def = def;
        public readonly Leaf[] Leaves = def.Leaves.Select(l => new Leaf(l)).ToArray();
        public Func<IEnumerable<DeviceSource>>? Devices;
        /// <summary>Per device id: each Inc leaf's value at the previous flush.</summary>
        public readonly Dictionary<string, long[]> DeviceLast = new(StringComparer.Ordinal);

        public int IndexOf(string path) => Array.FindIndex(Leaves, l => l.Def.Path == path);
    }

    private readonly object _lock = new();
    private readonly Group[] _groups = FirecrackerMetricsSchema.Groups.Select(g => new Group(g)).ToArray();
    private string? _instanceId;
    private SortedDictionary<string, string>? _properties;

    public MetricsRegistry()
    {
        // Process-wide sources count from the start.
        Bind("logger", "missed_log_count", static () => Interlocked.Read(ref Flint.Vmm.Logging.Logger.MissedLogCount));
        Bind("deprecated_api", "deprecated_http_api_calls", static () => Interlocked.Read(ref DeprecatedApiMetrics.DeprecatedHttpApiCalls));
        Bind("interrupts", "triggers", static () => Interlocked.Read(ref InterruptMetrics.Triggers));
        Bind("interrupts", "config_updates", static () => Interlocked.Read(ref InterruptMetrics.ConfigUpdates));
        Bind("logger", "rate_limited_log_count", static () => Interlocked.Read(ref RateLimitedLogMetrics.RateLimitedLogCount));
    }

    /// <summary>Binds (or rebinds) one number of a group to its source. Throws for a key Firecracker does not have, so no
    /// Flint-only key reaches the file.</summary>
    public void Bind(string group, string path, Func<long> read)
    {
        lock (_lock)
        {
            var g = Find(group);
            if (g.Def.PerDevice) throw new ArgumentException($"{group} is the sum of its devices: bind them with BindDevices");
            int i = g.IndexOf(path);
            if (i < 0) throw new ArgumentException($"Firecracker has no metric {group}.{path}");
            g.Leaves[i].Read = read;
            g.Leaves[i].Last = 0;
        }
    }

    /// <summary>Binds a <c>*_agg</c> object (min_us, max_us, sum_us).</summary>
    public void BindAggregate(string group, string name, LatencyAggregate agg)
    {
        Bind(group, name + ".min_us", () => agg.MinUs);
        Bind(group, name + ".max_us", () => agg.MaxUs);
        Bind(group, name + ".sum_us", () => agg.SumUs);
    }

    /// <summary>Binds every number of a group to the sum, over <paramref name="sources"/>, of the value each snapshot
    /// gives under that name (names a snapshot lacks read 0).</summary>
    public void BindSum(string group, IReadOnlyList<Func<(string Name, long Value)[]>> sources)
    {
        foreach (var leaf in FindDef(group).Leaves)
        {
            string n = leaf.Path;
            Bind(group, n, () =>
            {
                long sum = 0;
                foreach (var src in sources) sum += ValueOf(src(), n);
                return sum;
            });
        }
    }

    /// <summary>The devices of a per-device group (<c>block</c>, <c>net</c>): one <c>{group}_{id}</c> object each, in
    /// ordinal id order (Firecracker's BTreeMap), and the group itself as their sum.</summary>
    public void BindDevices(string group, Func<IEnumerable<DeviceSource>> devices)
    {
        lock (_lock)
        {
            var g = Find(group);
            if (!g.Def.PerDevice) throw new ArgumentException($"{group} is not a per-device group");
            g.Devices = devices;
        }
    }

    /// <summary>MetricsConfig.emit_id: a top-level "id" (the instance id) on every line.</summary>
    public void EmitInstanceId(string id)
    {
        lock (_lock) _instanceId = id;
    }

    /// <summary>MetricsConfig.properties: a top-level "properties" object on every line, keys in ordinal order.</summary>
    public void SetProperties(IReadOnlyDictionary<string, string> properties)
    {
        lock (_lock) _properties = new SortedDictionary<string, string>(properties.ToDictionary(), StringComparer.Ordinal);
    }

    /// <summary>Serialises one line (no trailing newline) and advances the Inc baselines.</summary>
    public byte[] Snapshot(DateTimeOffset now)
    {
        lock (_lock)
        {
            var buf = new MemoryStream(8192);
            using (var w = new Utf8JsonWriter(buf))
            {
                w.WriteStartObject();
                w.WriteNumber("utc_timestamp_ms", now.ToUnixTimeMilliseconds());
                if (_instanceId != null) w.WriteString("id", _instanceId);
                if (_properties != null)
                {
                    w.WriteStartObject("properties");
                    foreach (var (k, v) in _properties) w.WriteString(k, v);
                    w.WriteEndObject();
                }
                foreach (var g in _groups)
                {
                    if (g.Def.PerDevice) WritePerDevice(w, g);
                    else WriteGroup(w, g.Def.Name, g.Def.Leaves, i => Advance(g.Leaves[i]));
                }
                w.WriteEndObject();
            }
            return buf.ToArray();
        }
    }

    private static long Advance(Leaf leaf)
    {
        long v = leaf.Read();
        if (leaf.Def.Kind == MetricKind.Store) return v;
        long delta = Delta(v, leaf.Last);
        leaf.Last = v;
        return delta;
    }

    /// <summary>A source that went back (a device rebuilt under the same id) restarts its count.</summary>
    private static long Delta(long now, long last) => now >= last ? now - last : now;

    private static void WritePerDevice(Utf8JsonWriter w, Group g)
    {
        var leaves = g.Def.Leaves;
        var sum = new long[leaves.Length];
        var devices = new SortedDictionary<string, Func<(string Name, long Value)[]>?>(StringComparer.Ordinal);
        foreach (var d in g.Devices?.Invoke() ?? [])
            if (!devices.TryGetValue(d.Id, out var r) || r == null) devices[d.Id] = d.Read;
        foreach (var (id, read) in devices)
        {
            var values = read?.Invoke() ?? [];
            if (!g.DeviceLast.TryGetValue(id, out var last)) g.DeviceLast[id] = last = new long[leaves.Length];
            WriteGroup(w, g.Def.Name + "_" + id, leaves, i =>
            {
                long v = ValueOf(values, leaves[i].Path);
                if (leaves[i].Kind == MetricKind.Store) return v;
                long delta = Delta(v, last[i]);
                last[i] = v;
                sum[i] += delta;
                return delta;
            });
        }
        if (g.Def.NoAggregate) return;
        // The aggregate sums the Inc numbers; its stored ones (an _agg's min_us and max_us) stay 0, as Firecracker's
        // aggregate() leaves them.
        WriteGroup(w, g.Def.Name, leaves, i => leaves[i].Kind == MetricKind.Inc ? sum[i] : 0);
    }

    /// <summary>Writes one object; dotted leaves (<c>read_agg.min_us</c>) become a nested object.</summary>
    private static void WriteGroup(Utf8JsonWriter w, string name, MetricLeaf[] leaves, Func<int, long> value)
    {
        w.WriteStartObject(name);
        string? open = null;
        for (int i = 0; i < leaves.Length; i++)
        {
            string path = leaves[i].Path;
            int dot = path.IndexOf('.');
            string? parent = dot < 0 ? null : path[..dot];
            if (parent != open)
            {
                if (open != null) w.WriteEndObject();
                if (parent != null) w.WriteStartObject(parent);
                open = parent;
            }
            w.WriteNumber(dot < 0 ? path : path[(dot + 1)..], value(i));
        }
        if (open != null) w.WriteEndObject();
        w.WriteEndObject();
    }

    private static long ValueOf((string Name, long Value)[] values, string name)
    {
        foreach (var (k, v) in values)
            if (k == name) return v;
        return 0;
    }

    private Group Find(string group) =>
        Array.Find(_groups, g => g.Def.Name == group) ?? throw new ArgumentException($"Firecracker has no metrics group {group}");

    private static MetricGroup FindDef(string group) =>
        Array.Find(FirecrackerMetricsSchema.Groups, g => g.Name == group) ?? throw new ArgumentException($"Firecracker has no metrics group {group}");
}
