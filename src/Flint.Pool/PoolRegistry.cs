namespace Flint.Pool;

/// <summary>The registered functions and their pools: what the daemon's API works on.</summary>
public sealed class PoolRegistry : IAsyncDisposable
{
    private readonly ISlotLauncher _launcher;
    private readonly Action<string>? _log;
    private readonly object _lock = new();
    private readonly Dictionary<string, FunctionPool?> _pools = new(StringComparer.Ordinal); // null: being registered

    public PoolRegistry(ISlotLauncher launcher, Action<string>? log = null, TimeSpan? maintenanceInterval = null)
    {
        _launcher = launcher;
        _log = log;
        MaintenanceInterval = maintenanceInterval ?? TimeSpan.FromMilliseconds(250);
        Metrics = new PoolMetrics(Pools);
    }

    public PoolMetrics Metrics { get; }
    public TimeSpan MaintenanceInterval { get; }

    public IReadOnlyList<FunctionPool> Pools()
    {
        lock (_lock) return _pools.Values.Where(p => p != null).Select(p => p!).OrderBy(p => p.Name, StringComparer.Ordinal).ToArray();
    }

    /// <summary>Registers a function: its shared files are prepared, then its warm minimum starts in the background.</summary>
    public async Task<FunctionPool> RegisterAsync(FunctionSpec spec, CancellationToken ct = default)
    {
        lock (_lock)
        {
            if (!_pools.TryAdd(spec.Name, null))
                throw new PoolException(PoolErrorKind.AlreadyExists, $"Function '{spec.Name}' is already registered; DELETE it first.");
        }
        try
        {
            await _launcher.PrepareFunctionAsync(spec, ct);
        }
        catch
        {
            lock (_lock) _pools.Remove(spec.Name);
            throw;
        }
        var pool = new FunctionPool(spec, _launcher, Metrics, log: _log) { MaintenanceInterval = MaintenanceInterval };
        lock (_lock) _pools[spec.Name] = pool;
        pool.Start();
        return pool;
    }

    public FunctionPool Get(string name)
    {
        lock (_lock)
        {
            if (_pools.TryGetValue(name, out var p) && p != null) return p;
        }
        throw new PoolException(PoolErrorKind.NotFound, $"No function named '{name}' is registered.");
    }

    /// <summary>Drains a function (see <see cref="FunctionPool.DrainAsync"/>) and forgets it.</summary>
    public async Task DrainAsync(string name)
    {
        var pool = Get(name);
        await pool.DrainAsync(pool.Spec.InvokeTimeout + TimeSpan.FromSeconds(1));
        lock (_lock) _pools.Remove(name);
        await _launcher.ForgetFunctionAsync(pool.Spec);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var p in Pools())
        {
            try { await DrainAsync(p.Name); }
            catch (PoolException) { /* drained concurrently */ }
        }
        Metrics.Dispose();
    }
}
