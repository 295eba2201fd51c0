namespace Flint.Vmm.Metrics;

/// <summary>
/// Firecracker's per-route API counters: <c>get_api_requests</c>, <c>put_api_requests</c> and
/// <c>patch_api_requests</c>. Each request to a counted resource adds to its <c>*_count</c>; one answered with an
/// error (parse failure or refused by the VMM, status 400 and up) adds to its <c>*_fails</c> too. Routes Firecracker
/// keeps no counter for (GET /balloon, PUT /snapshot/create...) are not counted. Recording allocates nothing: the
/// API thread calls it once per request.
/// </summary>
public sealed class ApiRequestMetrics
{
    private enum Slot
    {
        GetInstanceInfo, GetMachineCfg, GetMmds, GetVersion,
        PutActions, PutBootSource, PutDrive, PutLogger, PutMachineCfg, PutCpuCfg, PutMetrics, PutNetwork, PutMmds, PutVsock,
        PatchDrive, PatchNetwork, PatchMachineCfg, PatchMmds,
        Count,
    }

    private readonly long[] _count = new long[(int)Slot.Count];
    private readonly long[] _fails = new long[(int)Slot.Count];

    /// <summary>Counts one answered request. <paramref name="path"/> may carry a query string; it is ignored.</summary>
    public void Record(string method, string path, int status)
    {
        var slot = SlotFor(method, FirstSegment(path));
        if (slot == Slot.Count) return;
        Interlocked.Increment(ref _count[(int)slot]);
        if (status >= 400) Interlocked.Increment(ref _fails[(int)slot]);
    }

    /// <summary>Binds every counter under Firecracker's group and counter names.</summary>
    public void BindTo(MetricsRegistry r)
    {
        Bind(r, "get_api_requests", "instance_info_count", Slot.GetInstanceInfo, fails: false);
        Bind(r, "get_api_requests", "machine_cfg_count", Slot.GetMachineCfg, fails: false);
        Bind(r, "get_api_requests", "mmds_count", Slot.GetMmds, fails: false);
        Bind(r, "get_api_requests", "vmm_version_count", Slot.GetVersion, fails: false);
        foreach (var (name, slot) in new[] { ("actions", Slot.PutActions), ("boot_source", Slot.PutBootSource), ("drive", Slot.PutDrive),
                     ("logger", Slot.PutLogger), ("machine_cfg", Slot.PutMachineCfg), ("cpu_cfg", Slot.PutCpuCfg), ("metrics", Slot.PutMetrics),
                     ("network", Slot.PutNetwork), ("mmds", Slot.PutMmds), ("vsock", Slot.PutVsock) })
            BindPair(r, "put_api_requests", name, slot);
        foreach (var (name, slot) in new[] { ("drive", Slot.PatchDrive), ("network", Slot.PatchNetwork),
                     ("machine_cfg", Slot.PatchMachineCfg), ("mmds", Slot.PatchMmds) })
            BindPair(r, "patch_api_requests", name, slot);
    }

    private void BindPair(MetricsRegistry r, string group, string name, Slot slot)
    {
        Bind(r, group, name + "_count", slot, fails: false);
        Bind(r, group, name + "_fails", slot, fails: true);
    }

    private void Bind(MetricsRegistry r, string group, string name, Slot slot, bool fails)
    {
        var a = fails ? _fails : _count;
        int i = (int)slot;
        r.Bind(group, name, () => Interlocked.Read(ref a[i]));
    }

    /// <summary>"/drives/root?x" -> "drives"; "/" -> "".</summary>
    private static ReadOnlySpan<char> FirstSegment(string path)
    {
        var p = path.AsSpan();
        int q = p.IndexOf('?');
        if (q >= 0) p = p[..q];
        p = p.TrimStart('/');
        int s = p.IndexOf('/');
        return s >= 0 ? p[..s] : p;
    }

    private static Slot SlotFor(string method, ReadOnlySpan<char> first) => method switch
    {
        "GET" => first switch
        {
            "" => Slot.GetInstanceInfo,
            "machine-config" => Slot.GetMachineCfg,
            "mmds" => Slot.GetMmds,
            "version" => Slot.GetVersion,
            _ => Slot.Count,
        },
        "PUT" => first switch
        {
            "actions" => Slot.PutActions,
            "boot-source" => Slot.PutBootSource,
            "drives" => Slot.PutDrive,
            "logger" => Slot.PutLogger,
            "machine-config" => Slot.PutMachineCfg,
            "cpu-config" => Slot.PutCpuCfg,
            "metrics" => Slot.PutMetrics,
            "network-interfaces" => Slot.PutNetwork,
            "mmds" => Slot.PutMmds,
            "vsock" => Slot.PutVsock,
            _ => Slot.Count,
        },
        "PATCH" => first switch
        {
            "drives" => Slot.PatchDrive,
            "network-interfaces" => Slot.PatchNetwork,
            "machine-config" => Slot.PatchMachineCfg,
            "mmds" => Slot.PatchMmds,
            _ => Slot.Count,
        },
        _ => Slot.Count,
    };
}
